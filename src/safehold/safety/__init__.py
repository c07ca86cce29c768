"""Safety by design for children (Principle 7): age signals and bands per account, the contact policy, nudity
protection for minors' accounts and the safety prompts shown with them (docs/safety.md)."""
