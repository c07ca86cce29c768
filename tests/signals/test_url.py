import hashlib

import pytest

from safehold.errors import SafeholdError
from safehold.signals.url import (
    UrlSignal,
    canonicalize_url,
    url_expression,
    url_hash,
    url_lookup_expressions,
    url_lookup_hashes,
)

# Google Safe Browsing's published canonicalisation examples ("URLs and Hashing"), plus our additions.
GSB_CASES = [
    ("http://host/%25%32%35", "http://host/%25"),
    ("http://host/%25%32%35%25%32%35", "http://host/%25%25"),
    ("http://host/%2525252525252525", "http://host/%25"),
    ("http://host/asdf%25%32%35asd", "http://host/asdf%25asd"),
    ("http://host/%%%25%32%35asd%%", "http://host/%25%25%25asd%25%25"),
    ("http://www.google.com/", "http://www.google.com/"),
    (
        "http://%31%36%38%2e%31%38%38%2e%39%39%2e%32%36/%2E%73%65%63%75%72%65/%77%77%77%2E%65%62%61%79%2E%63%6F%6D/",
        "http://168.188.99.26/.secure/www.ebay.com/",
    ),
    (
        "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
        "http://195.127.0.11/uploads/%20%20%20%20/.verify/.eBaysecure=updateuserdataxplimnbqmn-xplmvalidateinfoswqpcmlx=hgplmcx/",
    ),
    (
        "http://host%23.com/%257Ea%2521b%2540c%2523d%2524e%25f%255E00%252611%252A22%252833%252944_55%252B",
        "http://host%23.com/~a!b@c%23d$e%25f^00&11*22(33)44_55+",
    ),
    ("http://3279880203/blah", "http://195.127.0.11/blah"),
    ("http://www.google.com/blah/..", "http://www.google.com/"),
    ("www.google.com/", "http://www.google.com/"),
    ("www.google.com", "http://www.google.com/"),
    ("http://www.evil.com/blah#frag", "http://www.evil.com/blah"),
    ("http://www.GOOgle.com/", "http://www.google.com/"),
    ("http://www.google.com.../", "http://www.google.com/"),
    ("http://www.google.com/foo\tbar\rbaz\n2", "http://www.google.com/foobarbaz2"),
    ("http://www.google.com/q?", "http://www.google.com/q?"),
    ("http://www.google.com/q?r?", "http://www.google.com/q?r?"),
    ("http://www.google.com/q?r?s", "http://www.google.com/q?r?s"),
    ("http://evil.com/foo#bar#baz", "http://evil.com/foo"),
    ("http://evil.com/foo;", "http://evil.com/foo;"),
    ("http://evil.com/foo?bar;", "http://evil.com/foo?bar;"),
    ("http://notrailingslash.com", "http://notrailingslash.com/"),
    ("http://www.gotaport.com:1234/", "http://www.gotaport.com/"),
    ("  http://www.google.com/  ", "http://www.google.com/"),
    ("http:// leadingspace.com/", "http://%20leadingspace.com/"),
    ("http://%20leadingspace.com/", "http://%20leadingspace.com/"),
    ("%20leadingspace.com/", "http://%20leadingspace.com/"),
    ("https://www.securesite.com/", "https://www.securesite.com/"),
    ("http://host.com/ab%23cd", "http://host.com/ab%23cd"),
    ("http://host.com//twoslashes?more//slashes", "http://host.com/twoslashes?more//slashes"),
    # IPv4 spellings: hex, octal, fewer than four parts
    ("http://0x45.0x1c.0xa5.0x67/", "http://69.28.165.103/"),
    ("http://012.0x10.1/", "http://10.16.0.1/"),
    ("http://0300.0250.0.01/", "http://192.168.0.1/"),
    ("http://1.2.3.4.5/", "http://1.2.3.4.5/"),  # not an IP: kept as a name
    # IPv6
    ("http://[2001:0db8:0000::1]:8080/x", "http://[2001:db8::1]/x"),
    ("http://[::ffff:1.2.3.4]/", "http://1.2.3.4/"),
    ("http://[64:ff9b::1.2.3.4]/", "http://1.2.3.4/"),
    # IDNA, default ports, user-info, dot segments, upper-case scheme
    ("http://Bücher.example/", "http://xn--bcher-kva.example/"),
    ("HTTPS://Example.COM:443/a/./b/../c", "https://example.com/a/c"),
    ("http://user:pw@bank.example@evil.example:80/x", "http://evil.example/x"),
    ("//example.com/p", "http://example.com/p"),
]


@pytest.mark.parametrize(("raw", "canonical"), GSB_CASES)
def test_canonicalization(raw, canonical):
    assert canonicalize_url(raw) == canonical


def test_canonicalization_is_idempotent():
    for _raw, canonical in GSB_CASES:
        assert canonicalize_url(canonical) == canonical


def test_hash_is_sha256_of_schemeless_canonical_url():
    assert url_expression("HTTP://www.Example.com:80/a/../b?q#frag") == "www.example.com/b?q"
    assert url_hash("http://www.example.com/b?q") == hashlib.sha256(b"www.example.com/b?q").hexdigest()
    # spellings of one URL share a hash; http and https too
    assert url_hash("https://WWW.example.com./b?q") == url_hash("www.example.com/%62?q")
    assert url_hash("http://example.com/a") != url_hash("http://example.com/b")


def test_lookup_expressions_follow_safe_browsing():
    assert url_lookup_expressions("http://a.b.c/1/2.html?param=1") == [
        "a.b.c/1/2.html?param=1", "a.b.c/1/2.html", "a.b.c/", "a.b.c/1/",
        "b.c/1/2.html?param=1", "b.c/1/2.html", "b.c/", "b.c/1/",
    ]  # fmt: skip
    assert url_lookup_expressions("http://a.b.c.d.e.f.g/1.html") == [
        "a.b.c.d.e.f.g/1.html", "a.b.c.d.e.f.g/",
        "c.d.e.f.g/1.html", "c.d.e.f.g/", "d.e.f.g/1.html", "d.e.f.g/",
        "e.f.g/1.html", "e.f.g/", "f.g/1.html", "f.g/",
    ]  # fmt: skip
    assert url_lookup_expressions("http://1.2.3.4/1/") == ["1.2.3.4/1/", "1.2.3.4/"]
    # at most four path prefixes; the bare top-level domain is never used
    assert url_lookup_expressions("http://x.example/1/2/3/4/5/6.html") == [
        "x.example/1/2/3/4/5/6.html", "x.example/", "x.example/1/", "x.example/1/2/", "x.example/1/2/3/",
    ]  # fmt: skip


def test_bank_entry_for_folder_matches_page_on_subdomain():
    bank = {UrlSignal.from_url("bad.example/folder/")}
    assert bank & set(url_lookup_hashes("http://a.bad.example/folder/page?x=1"))
    assert not bank & set(url_lookup_hashes("http://a.bad.example/other/page?x=1"))
    assert not bank & set(url_lookup_hashes("http://notbad.example/folder/page"))
    # an exact-URL entry is the first lookup hash
    assert url_lookup_hashes("https://bad.example/folder/x")[0] == url_hash("bad.example/folder/x")


def test_signal_type():
    h = url_hash("example.com")
    assert UrlSignal.name == "url"
    assert UrlSignal.matching == "exact"
    assert UrlSignal.normalize(h.upper()) == h
    assert UrlSignal.from_url("http://EXAMPLE.com/") == h
    s = UrlSignal.signal("example.com")
    assert (s.type, s.value) == ("url", h)
    assert UrlSignal.lookup_values("example.com/")[0] == h
    for bad in ["abc", "z" * 64, "d41d8cd98f00b204e9800998ecf8427e", "http://", "http://[nope]/", None]:
        with pytest.raises(SafeholdError) as ei:
            UrlSignal.normalize(bad)
        assert ei.value.code == "signal.invalid_value", bad


def test_normalize_takes_url_text_as_the_scanner_hashes_it():
    """A bank can be filled with the URL itself: it is stored as the hash a scan of any URL under it looks up."""
    entry = UrlSignal.normalize("  bad.example.net/ ")
    assert entry == url_hash("http://bad.example.net/") == UrlSignal.normalize(entry.upper())
    assert entry in url_lookup_hashes("https://www.BAD.example.net:443/some/page?x=1#top")
    assert UrlSignal.normalize("http://1.2.3.4/x") == url_hash("1.2.3.4/x")


@pytest.mark.parametrize(
    "bad",
    ["", "   ", "http://", "http:///path", "http://host:port/", "http://[::1/", "http://[nope]/", "http://...../",
     None, 42, "http://x/" + "a" * 9000],
)  # fmt: skip
def test_invalid_urls(bad):
    with pytest.raises(SafeholdError) as ei:
        canonicalize_url(bad)
    assert ei.value.code == "url.invalid"
    with pytest.raises(SafeholdError) as ei:
        url_lookup_hashes(bad)
    assert ei.value.code == "url.invalid"
