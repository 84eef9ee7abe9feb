"""What an output URL says of itself: when a pre-signed one expires, and the MIME type its path names."""

from __future__ import annotations

import pytest

from tools.providers.base import mime_of, presigned_url_expiry

SIGV4 = (
    "https://bucket.s3.eu-central-1.amazonaws.com/video-gen/fox.mp4?X-Amz-Algorithm=AWS4-HMAC-SHA256"
    "&X-Amz-Credential=AKIAEXAMPLE%2F20261122%2Feu-central-1%2Fs3%2Faws4_request&X-Amz-Date=20261122T100000Z"
    "&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=abc123"
)


@pytest.mark.parametrize(
    ("url", "expires"),
    [
        (SIGV4, "2026-11-22T11:00:00Z"),
        ("https://r2.example.com/a.mp4?x-amz-date=20261122T235959Z&x-amz-expires=2", "2026-11-23T00:00:01Z"),
        (
            "https://storage.googleapis.com/b/a.mp4?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Date=20261122T100000Z"
            "&X-Goog-Expires=604800&X-Goog-Signature=ff",
            "2026-11-29T10:00:00Z",
        ),
        (
            "https://ark-content-generation-ap-southeast-1.tos-ap-southeast-1.bytepluses.com/a.mp4"
            "?X-Tos-Algorithm=TOS4-HMAC-SHA256&X-Tos-Date=20261122T100000Z&X-Tos-Expires=86400&X-Tos-Signature=ab",
            "2026-11-23T10:00:00Z",
        ),
        ("https://b.s3.amazonaws.com/a.mp4?AWSAccessKeyId=AKIA&Expires=1795341600&Signature=x", "2026-11-22T10:00:00Z"),
    ],
)
def test_the_expiry_is_read_from_sigv4_gcs_tos_and_sigv2_urls(url: str, expires: str) -> None:
    assert presigned_url_expiry(url) == expires


@pytest.mark.parametrize(
    "url",
    [
        "https://cdn.example.com/a.mp4",
        "https://cdn.example.com/a.mp4?X-Amz-Date=20261122T100000Z",
        "https://cdn.example.com/a.mp4?X-Tos-Expires=86400",
        "https://cdn.example.com/a.mp4?X-Amz-Date=yesterday&X-Amz-Expires=3600",
        "https://cdn.example.com/a.mp4?X-Amz-Date=20261122T100000Z&X-Amz-Expires=-5",
        "https://cdn.example.com/a.mp4?X-Amz-Date=20261122T100000Z&X-Amz-Expires=99999999999999999999",
        "https://cdn.example.com/a.mp4?Expires=soon",
        "https://cdn.example.com/a.mp4?Expires=99999999999999999999",
        "http://[x/a.mp4?X-Amz-Date=20261122T100000Z&X-Amz-Expires=3600",
    ],
)
def test_a_url_that_does_not_say_when_it_expires_has_no_expiry(url: str) -> None:
    assert presigned_url_expiry(url) is None


@pytest.mark.parametrize(
    ("url", "mime"),
    [
        ("https://cdn.example.com/v/a.mp4?sig=x.png", "video/mp4"),
        ("https://cdn.example.com/a.webm#t=1", "video/webm"),
        ("https://cdn.example.com/download?id=1", None),
        ("http://[x/a.mp4", None),
    ],
)
def test_the_mime_type_comes_from_the_path_alone_and_a_broken_url_names_none(url: str, mime: str | None) -> None:
    assert mime_of(url) == mime
