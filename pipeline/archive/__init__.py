"""The evidence archive: whole UTC days of events moved out of the hot store into Parquet,
with a signed digest chain that shows the archive is complete and unchanged (layout.py
says where every file lives; source.py what the archiver needs from a hot store)."""
