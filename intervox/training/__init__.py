"""intervox.training"""
