"""The writing systems hybridmix tells apart (the `script` column of data/)."""

# The `script` column's values: ISO 15924 codes. "Zyyy" (common): no letters, e.g. only numbers;
# "Zzzz": a script not listed; "Jpan": Han with kana; "Hang": Korean (transforms.kernels.analyze).
SCRIPTS = ("Zyyy", "Zzzz", "Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Guru", "Gujr", "Orya",
           "Taml", "Telu", "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Geor", "Armn", "Ethi",
           "Khmr", "Hang", "Hani", "Jpan", "Bopo", "Yiii")
