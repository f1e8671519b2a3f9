"""Serving: the XGBoost predictor (kserve.Model), the loopback model server, the v2 client."""
