"""Model providers: a small Protocol, the Anthropic SDK, and the offline demo."""
