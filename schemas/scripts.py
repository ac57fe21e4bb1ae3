"""The writing systems hybridmix tells apart (the `script` column of data/)."""

# The `script` column's values: ISO 15924 codes. "Zyyy" (common): no letters of a script, e.g. only
# numbers, or IPA and math letters;
# "Zzzz": a script not listed; "Jpan": Han with kana; "Hang": Korean (transforms.kernels.analyze).
SCRIPTS = ("Zyyy", "Zzzz", "Latn", "Cyrl", "Grek", "Arab", "Hebr", "Deva", "Beng", "Guru", "Gujr", "Orya",
           "Taml", "Telu", "Knda", "Mlym", "Sinh", "Thai", "Laoo", "Tibt", "Mymr", "Geor", "Armn", "Ethi",
           "Khmr", "Hang", "Hani", "Jpan", "Bopo", "Yiii")
