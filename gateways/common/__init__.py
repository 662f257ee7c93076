"""What every gateway shares: settings, the tenant directory, inbound and outbound plumbing,
signatures, phone numbers, attachments and the HTTP app."""
