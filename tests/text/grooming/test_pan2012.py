import io

import pytest

from safehold.errors import SafeholdError
from safehold.text.grooming.pan2012 import read_conversations, read_predators


def xml(body: str) -> io.BytesIO:
    return io.BytesIO(f'<?xml version="1.0" encoding="UTF-8"?>\n{body}'.encode())


def test_reads_the_synthetic_corpus(corpus_paths):
    conversations = list(read_conversations(corpus_paths[0]))
    predators = read_predators(corpus_paths[1])
    assert len(conversations) >= 40
    authors = {m.author for c in conversations for m in c.messages}
    assert predators and predators <= authors
    first = conversations[0].messages[0]
    assert first.id == "1" and first.author and first.text


def test_reads_messages_in_order_with_empty_text():
    doc = xml(
        '<conversations><conversation id="c1">'
        '<message line="1"><author>a</author><time>01:00</time><text>hi &amp; bye</text></message>'
        '<message line="2"><author>b</author><time>01:01</time><text/></message>'
        "</conversation></conversations>"
    )
    [conv] = read_conversations(doc)
    assert conv.id == "c1"
    assert [(m.author, m.text, m.id) for m in conv.messages] == [("a", "hi & bye", "1"), ("b", "", "2")]


@pytest.mark.parametrize(
    "body",
    [
        '<conversations>\n<conversation id="x">\n<message>\n</conversations>',
        "",
        "<other/>",
        '<conversations><conversation><message line="1"><author>a</author></message></conversation></conversations>',
        '<conversations><conversation id="c"><message line="1"><text>x</text></message></conversation></conversations>',
    ],
)
def test_malformed_xml_is_a_clean_error(body):
    with pytest.raises(SafeholdError) as err:
        list(read_conversations(xml(body)))
    assert err.value.code == "pan2012.invalid_xml"


def test_malformed_xml_reports_the_line():
    with pytest.raises(SafeholdError) as err:
        list(read_conversations(xml('<conversations>\n<conversation id="x">\n<message>\n</conversations>')))
    assert "line 5" in err.value.message and err.value.detail["line"] == 5


@pytest.mark.parametrize(
    "doctype",
    [
        '<!DOCTYPE c [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]>',  # entity expansion
        '<!DOCTYPE c [<!ENTITY e SYSTEM "file:///etc/passwd">]>',  # XXE
    ],
)
def test_dtds_and_entities_are_refused(doctype):
    with pytest.raises(SafeholdError) as err:
        body = '<conversations><conversation id="1">&b;</conversation></conversations>'
        list(read_conversations(xml(doctype + body)))
    assert err.value.code == "pan2012.invalid_xml"


def test_missing_files(tmp_path):
    with pytest.raises(SafeholdError) as err:
        list(read_conversations(tmp_path / "nope.xml"))
    assert err.value.code == "pan2012.not_found"
    with pytest.raises(SafeholdError):
        read_predators(tmp_path / "nope.txt")


def test_predators_from_file_object():
    assert read_predators(io.StringIO("a\n\n b \n")) == {"a", "b"}
    assert read_predators(io.BytesIO(b"x\ny\n")) == {"x", "y"}
