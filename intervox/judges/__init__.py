"""Quality-control judges: offline ASR (content), Resemblyzer (speaker) and Praat F0 (pitch).

`judge_clip` + `decide` score one intervened clip against its unedited source; `score_shard_dir`
scores an existing shard set after the fact; `validity_table` summarises per op for the card.
"""

from intervox.judges.qc import ClipScores, QCConfig, decide, judge_clip

__all__ = ["ClipScores", "QCConfig", "decide", "judge_clip"]
