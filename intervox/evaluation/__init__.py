"""intervox.evaluation"""
