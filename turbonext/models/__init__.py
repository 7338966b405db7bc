"""Model components of turbonext (each a diffusers ModelMixin/ConfigMixin or a helper for one)."""
