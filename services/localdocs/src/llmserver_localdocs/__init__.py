"""LocalDocs API: collections of folders and files, indexing progress, hybrid search."""
