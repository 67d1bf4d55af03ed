print("prism-translation-bench: not written yet")
