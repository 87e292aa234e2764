"""Recommendation models (NCF, Wide&Deep, DeepFM, DCN); models_factory.py holds THE map."""
