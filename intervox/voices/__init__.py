"""intervox.voices"""
