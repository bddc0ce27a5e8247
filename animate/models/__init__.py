"""Model sources, their weights and families, schedulers, and the tiny offline kits: nothing here renders."""
