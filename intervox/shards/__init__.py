"""intervox.shards"""
