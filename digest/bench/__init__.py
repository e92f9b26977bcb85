"""What only the benchmark uses: the counting SMTP sink and the real papers it sends. The service never imports it."""
