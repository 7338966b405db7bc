"""Small shared pieces with no model knowledge: image conversion, devices, hashing, the feature cache,
lazy package attributes."""
