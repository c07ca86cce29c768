"""One settings object for the whole process, read from ``SAFEHOLD_*`` environment variables.

Every default is chosen so that a new user needs nothing: data lives in the home (``SAFEHOLD_HOME``, else the
checkout's ``var/``, else the per-user data folder; see ``safehold.home``) and the database is a SQLite file there.
Production sets ``SAFEHOLD_DATABASE_URL`` to PostgreSQL.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from safehold.home import resolve_home, sqlite_url


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SAFEHOLD_", env_file=None, extra="ignore")

    home: Path = Field(
        default_factory=lambda: resolve_home().path,
        description="Directory for the SQLite file, index snapshots, keys (default: see safehold.home).",
    )
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite file in home.")

    # Hashing
    pdq_mode: str | None = Field(default=None, description="PDQ pipeline: 'fast' or 'reference' (None: default).")
    max_upload_bytes: int = Field(
        default=200 * 1024 * 1024,
        gt=0,
        description="Largest uploaded file; a multipart body may be this plus 1 MiB of fields and framing (413).",
    )
    # Media limits (docs/security.md, "Media and URL limits"): every bound is checked before the work it bounds.
    max_image_pixels: int = Field(
        default=50_000_000, gt=0, description="Most pixels (width × height) in one image (media.decompression_bomb)."
    )
    max_uploads_per_key: int = Field(
        default=0,
        ge=0,
        description="Upload requests served at once per API key, console session or (without one) address; more "
        "are refused unread (429 rate.too_many_uploads). 0: twice the number of cores.",
    )
    max_upload_bytes_in_flight: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Most memory all uploads being read may hold at once (about twice each file's size); an upload "
        "that cannot get its share within media_busy_wait_seconds is refused (503 media.busy).",
    )
    max_pixels_in_flight: int = Field(
        default=50_000_000,
        gt=0,
        description="Most decoded pixels held by all image hashes of the process at once (≈ 10 bytes each); a "
        "scan that cannot get its share within media_busy_wait_seconds is refused (503 media.busy).",
    )
    media_busy_wait_seconds: float = Field(
        default=3.0, ge=0, description="How long a hash waits for pixels in flight or a video slot (media.busy)."
    )
    image_isolate_pixels: int = Field(
        default=16_000_000,
        ge=0,
        description="Images of at least this many pixels (after JPEG scaling) are decoded in a child process with "
        "a deadline and a lower CPU priority; 0 decodes every image in the server's own process.",
    )
    image_decode_timeout: float = Field(
        default=20.0,
        gt=0,
        description="Wall-clock limit for decoding one image in a child process (media.too_complex).",
    )
    jpeg_max_scans: int = Field(default=100, ge=1, description="Most scans in a JPEG (media.too_complex).")
    jpeg_max_segments: int = Field(
        default=64, ge=1, description="Most APPn/COM segments in a JPEG (media.too_complex)."
    )
    video_max_seconds: float = Field(default=900.0, gt=0, description="Longest video hashed (media.too_large).")
    video_max_pixels: int = Field(
        default=4096 * 2160, gt=0, description="Largest video frame, width × height (media.too_large)."
    )
    video_hash_timeout: float = Field(
        default=60.0, gt=0, description="Wall-clock limit for hashing one video, probe included (media.too_large)."
    )
    video_max_concurrent: int = Field(default=2, ge=1, description="Video hashes at once per process (media.busy).")
    video_frame_match: bool = Field(
        default=True,
        description="Match an uploaded video's keyframes and scene changes (PDQ) against image banks, as well as "
        'its vPDQ against video banks (docs/matching.md, "Video against image banks").',
    )
    video_frames_per_minute: int = Field(
        default=30, ge=1, le=600, description="Most keyframes and scene changes matched per minute of video."
    )
    video_scene_threshold: float = Field(
        default=0.3, gt=0, lt=1, description="ffmpeg scene-change score (0–1) above which a frame is a new scene."
    )
    video_frames_kept: int = Field(
        default=16, ge=0, le=256, description="Most matched frames of one video kept (encrypted) for review."
    )

    # Request limits (see docs/security.md, "Request limits"): each is checked before any work is done on the
    # request, bodies while they stream in, before authentication for callers without a key or session.
    max_json_bytes: int = Field(
        default=1024 * 1024, gt=0, description="Largest JSON body of an API route (413 request.too_large)."
    )
    max_batch_bytes: int = Field(
        default=16 * 1024 * 1024,
        gt=0,
        description="Largest JSON body of a batch route: /v1/scan/batch, /v1/conversations/{id}/messages.",
    )
    max_form_bytes: int = Field(default=64 * 1024, gt=0, description="Largest console form (no file) body.")
    max_import_bytes: int = Field(
        default=1024 * 1024 * 1024, gt=0, description="Largest bank import body (streamed to disk, not memory)."
    )
    max_anonymous_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        description="Largest body of a request without a valid API key or console session (the log-in form fits).",
    )
    max_json_depth: int = Field(
        default=32, ge=2, le=200, description="Deepest nesting of a JSON body (400 request.json_too_deep)."
    )
    max_metadata_bytes: int = Field(
        default=16 * 1024,
        gt=0,
        description="Largest metadata object of an event (content, account, signal detail) as JSON "
        "(422 event.metadata_too_large).",
    )
    max_metadata_depth: int = Field(
        default=8, ge=1, le=32, description="Deepest nesting of an event's metadata (422 event.metadata_too_deep)."
    )
    rate_limit: float = Field(
        default=2000.0,
        ge=0,
        description="Requests per second per API key or console session, sustained (429 rate.limited); 0: off.",
    )
    rate_burst: int = Field(default=4000, ge=1, description="Requests a key may send at once above the rate.")
    rate_limit_anonymous: float = Field(
        default=100.0, ge=0, description="Requests per second per client address without a key or session; 0: off."
    )
    rate_burst_anonymous: int = Field(default=500, ge=1)
    # Tarpit (safehold.api.tarpit): a caller that keeps being refused waits before its next requests are served.
    tarpit_free_refusals: int = Field(
        default=20, ge=0, description="Refusals a caller may collect (net of those forgiven) before it is delayed."
    )
    tarpit_forgive_per_second: float = Field(
        default=0.2, gt=0, description="Refusals forgotten per second: a caller refused less often is never delayed."
    )
    tarpit_first_delay_seconds: float = Field(
        default=0.05, gt=0, description="First delay past the free refusals; doubles with each further refusal."
    )
    tarpit_max_delay_seconds: float = Field(
        default=5.0, ge=0, description="Longest delay of a caller's request; 0 turns the tarpit off."
    )
    tarpit_max_parked: int = Field(
        default=1000,
        ge=0,
        description="Delayed requests waiting at once (each holds a connection); past it a delayed caller's "
        "request is refused at once (429 rate.throttled).",
    )

    # URL scanning (SSRF guard)
    url_fetch_allow: list[str] = Field(
        default_factory=list,
        description="Hosts or CIDR networks that URL scans may fetch even though they are private/loopback.",
    )
    url_fetch_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect, and between two reads.")
    url_fetch_deadline: float = Field(
        default=15.0, gt=0, description="Seconds for a whole fetch, redirects and body included (url.timeout)."
    )
    url_fetch_max_concurrent: int = Field(
        default=8, ge=1, description="URL fetches at once per process (503 url.busy)."
    )
    url_fetch_max_per_key: int = Field(
        default=2, ge=1, description="URL fetches at once per API key or user (429 url.too_many_fetches)."
    )
    url_fetch_max_redirects: int = Field(default=5, ge=0)

    # Bulk imports (see docs/security.md)
    import_batch_rows: int = Field(
        default=5_000,
        ge=1,
        le=1_000_000,
        description="Records of a bank import written per transaction: other writers wait for one batch at most.",
    )

    # False-positive controls (docs/sharing.md): an entry matching far more than its peers is quarantined.
    flood_window_hours: int = Field(
        default=24, ge=1, le=720, description="Hours of matches the flood rule counts (and a release's cool-down)."
    )
    flood_min_matches: int = Field(
        default=100, ge=1, description="Matches in the window below which no entry is ever quarantined."
    )
    flood_factor: float = Field(
        default=10.0, gt=1, description="Quarantine at this many times the median window count of active peers."
    )
    match_stats_days: int = Field(
        default=90, ge=1, le=3650, description="Days of hourly match counts kept per bank entry."
    )

    # Matching index
    index_sync_interval: float = Field(default=0.5, gt=0, description="Seconds between change-log polls.")
    ready_max_index_lag_seconds: float = Field(
        default=60.0,
        gt=0,
        le=86_400,
        description="/readyz answers not ready when a bank change has waited this long without reaching an index.",
    )

    # API processes of `safehold serve` (docs/deployment.md, "Running at scale")
    web_workers: int = Field(default=1, ge=1, le=64, description="API processes sharing the port (serve --workers).")

    # CLI scanning
    scan_workers: int = Field(default=0, ge=0, description="Hashing processes for `safehold scan` (0: cores).")

    # Encryption at rest (see store/sealing.py): the key-encryption key, base64 of 32 bytes. Default: a key file
    # created under home/keys on first start. Never logged.
    instance_key: str | None = Field(default=None, repr=False, description="Base64 KEK; default: key file.")
    # Key rotation (see store/keyring.py and docs/security.md#key-rotation).
    instance_key_previous: str | None = Field(
        default=None, repr=False, max_length=4096, description="Comma-separated base64 previous KEKs (open only)."
    )
    key_check_seconds: float = Field(
        default=5.0, ge=0, le=3600, description="Longest a process goes before noticing a rotated key file."
    )

    # Console log-in
    session_hours: float = Field(default=12.0, gt=0, description="A console session ends this long after log-in.")
    session_idle_minutes: float = Field(default=60.0, gt=0, description="...or after this long without a request.")
    # Log-in abuse (see auth/throttle.py and docs/security.md): back-off, never a lock-out anyone can trigger.
    login_free_failures: int = Field(
        default=5, ge=1, description="Failures per address (and per name and address) before back-off starts."
    )
    login_backoff_seconds: float = Field(default=1.0, gt=0, description="First back-off; doubles per failure.")
    login_backoff_max_seconds: float = Field(default=900.0, gt=0, description="Longest back-off for an address.")
    login_account_free_failures: int = Field(
        default=20, ge=1, description="Failures on one name from all addresses before the name's short delay."
    )
    login_account_backoff_max_seconds: float = Field(
        default=30.0, gt=0, description="Longest delay of a name (only for addresses that have failed before)."
    )
    login_failure_window_minutes: float = Field(
        default=15.0, gt=0, description="A failure counter is forgotten this long after its last failure."
    )
    login_max_verifications: int = Field(
        default=2, ge=1, description="Password checks (argon2, 64 MiB each) running at once per process."
    )
    login_verify_wait_seconds: float = Field(
        default=1.0, ge=0, description="How long an attempt waits for a free check before 503 auth.busy."
    )
    login_audit_window_seconds: float = Field(
        default=300.0, gt=0, description="One auth.login_failed record per address and account per window."
    )
    login_audit_max_records: int = Field(
        default=100, ge=1, description="At most this many auth.login_failed records per window; the rest counted."
    )
    totp_required_roles: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["admin", "legal"],
        description="Roles that must log in with a TOTP code (comma-separated; empty: none).",
    )
    totp_issuer: str = Field(default="Safehold", description="The name authenticator apps show for the account.")
    login_step_minutes: float = Field(
        default=5.0, gt=0, description="Time to enter the TOTP code after the password was accepted."
    )
    public_url: str | None = Field(
        default=None,
        description="The URL people reach the console at (e.g. https://safehold.example.org): the console's "
        "Origin check compares scheme, host and port with it, and cookies are Secure when it is https.",
    )
    cookie_secure: bool | None = Field(
        default=None,
        description="Mark console cookies Secure. Default: when SAFEHOLD_PUBLIC_URL (or the request) is https.",
    )

    # Group commit of chat messages and events (docs/throughput.md)
    group_commit_ms: float = Field(
        default=5.0,
        ge=0,
        le=1000,
        description="Chat messages and events are written in shared transactions, committed when the oldest has "
        "waited this many milliseconds (or a batch is full); 0 turns group commit off (one transaction each).",
    )
    group_commit_max_batch: int = Field(
        default=200, ge=1, le=10_000, description="At most this many items are committed in one transaction."
    )
    group_commit_max_queue: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="At most this many items wait to be committed; more are refused with 503 intake.busy.",
    )
    group_commit_writers: int = Field(
        default=1, ge=1, le=64, description="Committer threads per process on PostgreSQL (SQLite has one)."
    )
    group_commit_max_wait_ms: float = Field(
        default=5_000.0,
        gt=0,
        le=600_000,
        description="An item that waited longer than this for its commit (longer than a client waits) is answered "
        "503 intake.busy without its work being done; the client retries.",
    )
    conversation_state_cache: int = Field(
        default=4096,
        ge=0,
        le=1_000_000,
        description="Conversations whose scoring state each API process keeps between messages (about 8 KB each), "
        "so a chat message need not read and decode it; 0 keeps none.",
    )

    # Events
    event_key_days: float = Field(
        default=30.0, gt=0, description="Idempotency keys of POST /v1/events are remembered this long."
    )

    # Re-matching past uploads (docs/sharing.md): the hashes of scanned content, kept so a bank entry that arrives
    # later is matched against them. Off by default: an operator opts in to keeping hashes of everything scanned.
    seen_hashes: bool = Field(
        default=False,
        description="Keep the hashes (never the media) of content scanned with a content id, for re-matching.",
    )
    seen_hashes_days: float = Field(
        default=90.0, gt=0, description="Days a seen hash is kept; older ones are purged and never re-matched."
    )
    rematch_interval: float = Field(
        default=300.0, gt=0, description="Seconds between rounds matching new bank entries against seen hashes."
    )

    # Review
    claim_minutes: float = Field(default=30.0, gt=0, description="A claim on a case lapses after this long idle.")

    # Webhooks (actions to the platform)
    webhook_timeout: float = Field(default=10.0, gt=0)
    webhook_max_attempts: int = Field(default=15, ge=1, description="Attempts before a delivery is dead-lettered.")
    webhook_backoff_seconds: float = Field(default=2.0, gt=0, description="First retry delay; doubles each time.")
    webhook_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_poll_interval: float = Field(default=1.0, gt=0)

    # Feedback to hash exchanges (Principle 10: a reviewer's verdict on a match, sent to the entry's source)
    feedback_max_attempts: int = Field(
        default=12, ge=1, description="Attempts before an opinion for an exchange is marked failed."
    )
    feedback_backoff_seconds: float = Field(
        default=30.0, gt=0, description="First retry delay of an opinion; doubles each time."
    )
    feedback_backoff_max_seconds: float = Field(default=21600.0, gt=0)
    feedback_poll_interval: float = Field(
        default=30.0, gt=0, description="Seconds between rounds of the feedback.deliver task (queue, then send)."
    )

    # Hash exchanges (Principle 10, docs/sharing.md)
    exchange_poll_interval: float = Field(
        default=60.0, gt=0, description="Seconds between rounds looking for exchanges due a fetch."
    )
    exchange_timeout: float = Field(default=30.0, gt=0, le=600, description="Seconds allowed per exchange request.")
    exchange_max_body_bytes: int = Field(
        default=64 << 20, ge=1024, description="The largest answer (or feed file) an exchange reads."
    )
    exchange_lease_seconds: float = Field(
        default=300.0, gt=0, description="A fetch holds its exchange this long per batch; a crashed one frees it then."
    )
    exchange_files_dir: Path | None = Field(
        default=None, description="The only folder a feed exchange reads local files from (default: home/feeds)."
    )

    # External classification services (Principle 2, docs/classifiers.md): their job queue, off the matching path
    screening_queue_max_jobs: int = Field(
        default=10_000, ge=1, le=10_000_000, description="Most jobs waiting for the external screening services."
    )
    screening_queue_max_bytes: int = Field(
        default=1 << 30, ge=1 << 20, description="Most media bytes waiting (sealed) for the screening services."
    )
    screening_max_attempts: int = Field(
        default=8, ge=1, le=100, description="Attempts at one screening job before it is marked failed."
    )
    screening_backoff_seconds: float = Field(default=30.0, gt=0)
    screening_backoff_max_seconds: float = Field(default=3600.0, gt=0)
    screening_lease_seconds: float = Field(
        default=120.0, gt=0, le=3600, description="A worker holds a screening job this long; a crashed one frees it."
    )
    screening_poll_interval: float = Field(
        default=5.0, gt=0, description="Seconds between rounds of the screening.run task."
    )

    # Transparency reports (Principle 11, docs/transparency.md)
    transparency_min_cell: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Small-cell threshold of stored reports: counts from 1 to this minus 1 are published as '<N'.",
    )
    transparency_provider: str = Field(
        default="Provider not named (set SAFEHOLD_TRANSPARENCY_PROVIDER)",
        min_length=1,
        max_length=200,
        description="The operator's legal name, printed on every transparency report.",
    )
    transparency_service: str = Field(
        default="Service not named (set SAFEHOLD_TRANSPARENCY_SERVICE)",
        min_length=1,
        max_length=200,
        description="The name of the service the transparency reports are about.",
    )

    # Logs (safehold.logs). Read from the environment by the CLI before settings load; here for validation and docs.
    log_format: Literal["text", "json"] = Field(
        default="text", description="Log lines as human text, or as JSON objects (one a line) for a log shipper."
    )

    # Background work (safehold.workers; see docs/deployment.md). "inprocess": threads in each server process;
    # "celery": the shared tasks run on Celery workers (`safehold worker`, `safehold beat`) with Redis as broker.
    tasks: Literal["inprocess", "celery"] = Field(default="inprocess", description="Engine of the shared tasks.")
    redis_url: str = Field(default="redis://127.0.0.1:6379/0", description="Celery's broker (SAFEHOLD_TASKS=celery).")
    upkeep_interval: float = Field(
        default=0.5, gt=0, description="Seconds between rounds of the periodic upkeep tasks (prune, purge, ...)."
    )
    celery_upkeep_interval: float = Field(
        default=60.0,
        gt=0,
        description="With SAFEHOLD_TASKS=celery: seconds between the beat's rounds of the shared upkeep tasks, each "
        "a Celery message (the per-process ones keep SAFEHOLD_UPKEEP_INTERVAL).",
    )
    task_visibility_timeout: float = Field(
        default=600.0,
        gt=0,
        description="Seconds before a task taken by a worker that died (SIGKILL, lost machine) is given to another.",
    )

    # Reporting to NCMEC's CyberTipline (see docs/reporting.md). The default is NCMEC's test environment: filing
    # for real needs the production URL set on purpose, with the credentials NCMEC issued for it.
    cybertip_url: str = Field(
        default="https://exttest.cybertip.org/ispws",
        description="CyberTipline API base URL: https://exttest.cybertip.org/ispws (test) or "
        "https://report.cybertip.org/ispws (production).",
    )
    cybertip_username: str | None = Field(default=None, description="ESP user name issued by NCMEC.")
    cybertip_password: str | None = Field(default=None, repr=False, description="Its password. Never logged.")
    cybertip_timeout: float = Field(default=60.0, gt=0, description="Seconds per CyberTipline request.")
    cybertip_max_attempts: int = Field(default=8, ge=1, description="Filing attempts before a report fails.")
    cybertip_backoff_seconds: float = Field(default=30.0, gt=0, description="First retry delay; doubles.")
    cybertip_backoff_max_seconds: float = Field(default=6 * 3600.0, gt=0)
    cybertip_schema: Path | None = Field(
        default=None, description="A newer cyber_tipline.xsd (from the API's /xsd) to validate against."
    )
    # Who reports: the reporter block of every report.
    reporter_first_name: str | None = None
    reporter_last_name: str | None = None
    reporter_email: str | None = None
    reporter_phone: str | None = None
    platform_name: str | None = Field(default=None, description="Your service's name (espService).")
    legal_url: str | None = Field(default=None, description="Where law enforcement sends legal process.")
    terms_of_service_url: str | None = None

    # Evidence (see docs/evidence.md): its own key-encryption key, separate from the instance key.
    evidence_key: str | None = Field(default=None, repr=False, description="Base64 KEK; default: key file.")
    evidence_key_previous: str | None = Field(
        default=None, repr=False, max_length=4096, description="Comma-separated base64 previous KEKs (open only)."
    )
    evidence_kms: str | None = Field(
        default=None, description="'package.module:factory' returning a KeyProvider (a KMS plug-in)."
    )
    evidence_jurisdiction: str = Field(default="US", description="Jurisdiction of evidence with none given.")
    evidence_retention_days: int = Field(
        default=365, ge=1, description="Kept this long after its report is finished (REPORT Act: one year)."
    )
    evidence_retention_by_jurisdiction: dict[str, int] = Field(
        default_factory=dict, description='Per-jurisdiction days, JSON: {"EU": 365, "UK": 730}.'
    )

    # Text safety (see docs/text-safety.md)
    grooming_alert_threshold: float = Field(
        default=0.7, gt=0, le=1, description="A conversation whose risk reaches this opens a case."
    )
    # Live streams (docs/live.md): sampling rates by risk, bounds, and where pulled streams may come from
    live_rate_baseline: float = Field(default=0.5, gt=0, le=30, description="Sampled frames/s of a stream at no risk.")
    live_rate_elevated: float = Field(default=1.0, gt=0, le=30, description="Sampled frames/s with one risk reason.")
    live_rate_high: float = Field(default=2.0, gt=0, le=30, description="Sampled frames/s with two or more reasons.")
    live_high_score: float = Field(
        default=0.8, gt=0, le=1, description="A classifier score on a sampled frame at or above this raises the risk."
    )
    live_max_streams: int = Field(
        default=1000, gt=0, description="Streams under watch at once (live.too_many_streams)."
    )
    live_max_streams_per_key: int = Field(
        default=500,
        gt=0,
        description="Streams one API key may have under watch at once (live.too_many_streams_for_key).",
    )
    live_max_pulls: int = Field(
        default=20, gt=0, description="Streams pulled at once, each by an ffmpeg process (live.too_many_pulls)."
    )
    live_max_frame_bytes: int = Field(
        default=2 * 1024 * 1024, gt=0, description="Largest pushed or pulled frame (live.frame_too_large)."
    )
    live_buffer_seconds: float = Field(
        default=30.0, gt=0, le=600, description="Seconds of sampled frames kept per stream, preserved on an alert."
    )
    live_buffer_bytes: int = Field(
        default=8 * 1024 * 1024, gt=0, description="Most bytes of sampled frames kept per stream (oldest go first)."
    )
    live_max_buffer_bytes: int = Field(
        default=512 * 1024 * 1024,
        gt=0,
        description="Most bytes of sampled frames kept by all streams of a process together (the oldest frames of "
        "the streams holding most go first).",
    )
    live_pull_allow: list[str] = Field(
        default_factory=list,
        description="CIDR networks (loopback/private only) Safehold may pull streams from; empty: no pulling.",
    )
    live_ffmpeg: str = Field(default="ffmpeg", description="The ffmpeg program that reads pulled streams.")
    # Operator rules in CEL (see docs/rules.md)
    rules_require_approval: bool = Field(
        default=True, description="A rule version goes live only once a second admin (not its author) approved it."
    )
    rules_backtest_rows: int = Field(
        default=100_000, ge=1, le=10_000_000, description="Recorded detections a backtest reads at most."
    )
    rules_backtest_seconds: float = Field(
        default=30.0, gt=0, le=3600, description="Seconds a backtest runs at most (it answers what it saw by then)."
    )

    grooming_model: Path | None = Field(
        default=None, description="A model file from `safehold text train` (default: the model in the package)."
    )
    solicitation_case_threshold: float = Field(
        default=0.7, gt=0, le=1, description="A post whose solicitation score reaches this opens a case."
    )
    classifiers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Classifiers that score uploaded images for human review (comma-separated names; empty: none).",
    )
    classifier_threads: int = Field(
        default=1, ge=1, le=64, description="Threads one classification by a local model may use (1: one core)."
    )
    classifier_video_frames: int = Field(
        default=16, ge=1, le=256, description="Most frames of a video the classifiers score (evenly spread)."
    )
    conversation_idle_days: float = Field(
        default=90.0,
        gt=0,
        description="Conversations without a case are forgotten this long after their last message.",
    )
    # Safety by design for children (see docs/safety.md)
    safety_reload_seconds: float = Field(
        default=5.0,
        ge=0,
        le=3600,
        description="A process re-reads the operator's safety prompts and media policy at most this long after a "
        "change made by another process (0: on every use).",
    )

    # Age signals and bands (see docs/safety.md, "Age signals and bands" and "Age-assurance providers")
    age_cache_ttl_seconds: float = Field(
        default=30.0,
        ge=0,
        le=300,
        description="How long a process trusts a resolved age band it has read (0: no cache). A band recorded in "
        "this process is seen at once; one recorded in another process within this time.",
    )
    age_estimation_buffer_years: float = Field(
        default=2.0,
        ge=0,
        le=10,
        description="An age estimate says 'adult' conclusively only at 18 plus this many years (the challenge age).",
    )
    age_assurance: dict[str, dict] = Field(
        default_factory=dict,
        repr=False,
        description='Age-assurance providers by name, JSON: {"acme": {"type": "signed_webhook", "secret": "…"}}.',
    )

    # Transparency (see docs/transparency.md#how-the-figures-are-computed-daily-facts)
    transparency_refresh_seconds: float = Field(
        default=10.0,
        ge=0,
        le=86400,
        description="The overview and the reports roll up the daily facts again first when they are older than this "
        "(0: before every read).",
    )

    # Contact policy (see docs/safety.md#contact-policy): what each process keeps in memory so a check needs no query.
    contact_policy_ttl: float = Field(
        default=2.0, gt=0, le=300, description="Seconds between checks for a newer saved contact policy."
    )
    contact_cache_ttl: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds the per-account counts of open grooming and report cases are kept per process.",
    )
    contact_cache_accounts: int = Field(
        default=200_000, ge=100, description="Most accounts whose open-case counts one process keeps."
    )

    # User and trusted-flagger reports (see docs/user-reports.md).
    user_report_max_screenshots: int = Field(
        default=4, ge=0, le=20, description="Screenshots one user report may attach (user_report.too_many_screenshots)."
    )
    user_report_max_screenshot_bytes: int = Field(
        default=192 * 1024,
        gt=0,
        le=8 * 1024 * 1024,
        description="Largest screenshot of a user report, decoded (user_report.screenshot_too_large); the whole "
        "request still fits in max_json_bytes.",
    )
    user_report_form_per_minute: int = Field(
        default=10,
        ge=0,
        le=10_000,
        description="Reports one client address may send through the public form per "
        "minute (429 rate.limited); 0: off.",
    )
    user_report_help: dict = Field(
        default_factory=dict,
        description='Help resources in the acknowledgement of a child\'s own report, JSON: {"text": "…", "links": '
        '[{"title": "…", "url": "https://…"}]}; empty: the built-in text (tell a trusted adult, NCMEC Take It Down '
        "and CyberTipline).",
    )

    @field_validator("totp_required_roles", "classifiers", mode="before")
    @classmethod
    def _name_list(cls, v):
        if isinstance(v, str):
            text = v.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [r.strip() for r in text.split(",") if r.strip()]
        return v

    @field_validator("live_pull_allow")
    @classmethod
    def _live_pull_allow(cls, v: list[str]) -> list[str]:
        import ipaddress

        for n in v:
            net = ipaddress.ip_network(n, strict=False)  # ValueError: not a network
            if not (net.is_private or net.is_loopback):
                raise ValueError(f"live_pull_allow takes loopback or private networks only, not {n}")
        return v

    @field_validator("public_url")
    @classmethod
    def _public_url(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(v)
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError as exc:
            raise ValueError(f"SAFEHOLD_PUBLIC_URL has an invalid port: {v!r}") from exc
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SAFEHOLD_PUBLIC_URL must be an absolute http:// or https:// URL, not {v!r}")
        return v

    @property
    def public_origin(self) -> tuple[str, str, int] | None:
        """``(scheme, host, port)`` of ``public_url``, or None."""
        if not self.public_url:
            return None
        from urllib.parse import urlsplit

        parts = urlsplit(self.public_url)
        return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, v: Path) -> Path:
        return v.expanduser().resolve()

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return sqlite_url(self.home)

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @property
    def key_file(self) -> Path:
        return self.home / "keys" / "instance.key"

    @property
    def feeds_dir(self) -> Path:
        return self.exchange_files_dir or self.home / "feeds"

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def evidence_dir(self) -> Path:
        return self.home / "evidence"

    @property
    def evidence_key_file(self) -> Path:
        return self.home / "keys" / "evidence.key"

    @property
    def exports_dir(self) -> Path:
        return self.home / "exports"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
