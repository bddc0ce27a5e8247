"""Everything under the output root: its layout, manifest, sidecars, records, frame store, claims, gallery
and reading frames back."""
