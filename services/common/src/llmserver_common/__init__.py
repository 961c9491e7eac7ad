"""Code shared by every llmserver service. Keep it small."""
