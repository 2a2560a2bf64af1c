"""The benchmark's data: the embedded toy corpus (``toy``), the preparation pipeline for real
recordings (``prepare``), and the contact-sheet preview; ``imac-bench data`` serves them."""
