"""intervox.interventions"""
