"""intervox.features"""
