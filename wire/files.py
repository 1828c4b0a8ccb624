"""The files a folder ingest sends: a module of its own, without pydantic, since the command line reads it at
every start."""

# What `snapdex ingest <folder>` sends and a source lists by default: the service reads each type from its content;
# the suffix only picks the files.
FILE_TYPES = {".txt", ".md", ".markdown", ".html", ".htm", ".docx", ".pdf", ".pptx", ".xlsx", ".csv", ".tsv", ".eml",
              ".msg", ".epub", ".odt", ".rtf"}
