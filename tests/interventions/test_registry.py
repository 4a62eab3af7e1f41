"""Registry: every op registered, dict round trips, unknown names/fields refused, `interventions list`."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from intervox.errors import ConfigError
from intervox.interventions.base import Factor
from intervox.interventions.commands import interventions
from intervox.interventions.registry import available, from_dict, get_op_class

EXPECTED = {
    "world_vc": Factor.SPEAKER, "praat_gender": Factor.SPEAKER, "nansy": Factor.SPEAKER,
    "voice_swap": Factor.SPEAKER, "coqui_vc": Factor.SPEAKER, "respeak": Factor.CONTENT,
    "coqui_clone": Factor.CONTENT, "noise": Factor.CHANNEL, "reverb": Factor.CHANNEL,
    "telephone": Factor.CHANNEL, "gain_clip": Factor.CHANNEL,
}
# Non-default settings per op, so the round trip carries real values (and passes XTTS's opt-in).
SETTINGS = {
    "world_vc": {"f0_ratio": [0.8, 1.3], "f0_method": "harvest"},
    "praat_gender": {"formant_ratio": [1.0, 1.1], "min_shift": 0.0},
    "nansy": {"pitch_ratio": [1.0, 1.5]},
    "voice_swap": {"voices": ["flite:slt", "espeak:en-us:m3"]},
    "coqui_vc": {"model": "knnvc", "model_dir": "/models/knnvc", "wavlm_path": "/models/WavLM-Large.pt"},
    "respeak": {"texts": ["One more sentence."]},
    "coqui_clone": {"accept_xtts_license": True, "texts": ["Hello."]},
    "noise": {"snr_db": [0.0, 5.0], "colours": ["pink"]},
    "reverb": {"rt60": [0.3, 0.4]},
    "telephone": {"low_hz": 200.0},
    "gain_clip": {"clip_prob": 0.0},
}


def test_every_op_is_registered_with_its_factor():
    ops = available()
    assert set(ops) == set(EXPECTED)
    for name, factor in EXPECTED.items():
        assert ops[name].target is factor
        assert isinstance(ops[name].keeps_timing, bool)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_to_dict_from_dict_round_trip(name):
    op = from_dict({"name": name, **SETTINGS[name]})
    d = op.to_dict()
    assert d["name"] == name and {k: d[k] for k in SETTINGS[name]} == SETTINGS[name]
    json.dumps(d)
    again = from_dict(d)
    assert again == op and type(again) is get_op_class(name)


def test_unknown_op_is_named():
    with pytest.raises(ConfigError, match="unknown intervention 'pitch_bend'"):
        from_dict({"name": "pitch_bend"})


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_unknown_field_is_named(name):
    with pytest.raises(ConfigError, match=f"{name}.*unknown parameter 'snr_dbb'"):
        from_dict({"name": name, **SETTINGS[name], "snr_dbb": [1, 2]})


def test_bad_range_is_a_config_error_naming_the_field():
    with pytest.raises(ConfigError, match="snr_db"):
        from_dict({"name": "noise", "snr_db": [20, 5]})
    with pytest.raises(ConfigError, match="colours"):
        from_dict({"name": "noise", "colours": ["purple"]})


def test_list_command_shows_every_op_and_its_defaults():
    result = CliRunner().invoke(interventions, ["list", "--json"])
    assert result.exit_code == 0, result.output
    ops = {op["name"]: op for op in json.loads(result.output)}
    assert set(ops) == set(EXPECTED)
    assert ops["nansy"]["target"] == "speaker" and ops["nansy"]["keeps_timing"] is True
    assert ops["nansy"]["parameters"]["formant_ratio"] == [1.0, 1.4]
    assert ops["respeak"]["keeps_timing"] is False
    table = CliRunner().invoke(interventions, ["list"])
    assert table.exit_code == 0 and "world_vc" in table.output and "f0_method" in table.output
