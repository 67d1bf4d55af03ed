// Placeholder until this provider lands (issue 3).
