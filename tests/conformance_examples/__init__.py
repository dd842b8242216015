"""Example storage backends that show what ``svc.testing.StorageConformance`` demands."""
