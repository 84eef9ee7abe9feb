"""What the tools do: the result model, errors, polling, the tools themselves and the provider adapters."""
