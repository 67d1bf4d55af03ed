// Placeholder until the Bedrock provider lands (issue 4).
