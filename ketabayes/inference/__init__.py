"""ketabayes.inference."""
