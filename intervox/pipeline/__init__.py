"""intervox.pipeline"""
