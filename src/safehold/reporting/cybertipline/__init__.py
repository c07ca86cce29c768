"""NCMEC's CyberTipline ESP Reporting API: the schema, the document builder, the client, and a local stand-in."""
