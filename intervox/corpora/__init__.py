"""intervox.corpora"""
