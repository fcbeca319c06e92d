"""ketabayes.result."""
