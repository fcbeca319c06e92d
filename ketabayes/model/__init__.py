"""ketabayes.model."""
