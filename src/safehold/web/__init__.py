"""The staff console: server-rendered pages, no CDN, no front-end build step."""
