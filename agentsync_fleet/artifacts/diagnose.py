"""What an `aws s3 sync` failure means for a person, and keeping credentials out of everything we show.

`diagnose` turns the CLI's output into one message that names the host, the
bucket and the URL, carries AWS's own words, and says what to do. `scrub`
masks anything that looks like a credential before output is shown or kept;
agentsync never reads credentials itself, this is a second line of defence
against a CLI or an endpoint that echoes them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..models import Host, S3Entry
from .parse import SyncOutput

INSTALL_HINT = ("install it there: `pip install awscli` (or `pipx install awscli`), `sudo apt install awscli` on "
                "Debian, or AWS CLI v2: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html")


def install_hint(host: Host) -> str:
    """How to install the CLI, and where it must be found: a local host runs it with agentsync's own PATH."""
    where = ("agentsync's own PATH here (`command -v aws`)" if host.local
             else f"the PATH of non-interactive SSH sessions (`ssh {host.ssh or host.name} command -v aws`)")
    return f"{INSTALL_HINT} — and make sure it is on {where}"

_SECRET_PATTERNS = (
    # access key ids: AKIA (long-term), ASIA (temporary), and the other documented prefixes
    (re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}(?![A-Z0-9])"),
     "<redacted-key-id>"),
    # `name = value`, `name: value`, quoted either way: env dumps (`export -p` single-quotes), credentials
    # files, JSON, Python reprs in --debug output, query strings, Authorization headers
    (re.compile(r"(?i)(aws_secret_access_key|aws_session_token|aws_security_token|secret_?access_?key|session_?token"
                r"|x-amz-security-token|x-amz-credential|x-amz-signature|signature)(['\"]?\s*[:=]\s*['\"]?)"
                r"[^\s\"'&,<]+"),
     r"\1\2<redacted>"),
    # `NAME value` (fish `set -x`, csh `setenv`): only the variables' own names, followed by a secret-like word
    (re.compile(r"\b(AWS_SECRET_ACCESS_KEY|AWS_SESSION_TOKEN|AWS_SECURITY_TOKEN)(\s+['\"]?)[A-Za-z0-9/+=]{16,}"),
     r"\1\2<redacted>"),
    # XML bodies (STS responses in --debug output)
    (re.compile(r"(?i)(<(?:SecretAccessKey|SessionToken)>)[^<]+"), r"\1<redacted>"),
    (re.compile(r"(?i)(https?://)[^/\s:@]+:[^/\s@]+@"), r"\1<redacted>@"),
)


def scrub(text: str) -> str:
    """Mask access key ids, secrets, session tokens, signatures and URL passwords."""
    for pattern, replacement in _SECRET_PATTERNS:
        text = pattern.sub(replacement, text)
    return text


@dataclass(frozen=True)
class Problem:
    """One failed entry, explained: message (names bucket and URL), AWS's words, a hint, the error code."""

    message: str
    hint: str
    aws_message: str = ""
    code: str = ""


def _who(entry: S3Entry) -> str:
    if entry.profile:
        return f"profile '{entry.profile}'"
    return "its default credentials (environment, ~/.aws/credentials or instance role)"


_PERMISSIONS = {"up": "s3:ListBucket and s3:PutObject", "down": "s3:ListBucket and s3:GetObject"}

# service error code → (message, hint); formatted with bucket, url, host, who, endpoint, perms, login
_BY_CODE: dict[str, tuple[str, str]] = {
    "NoSuchBucket": ("bucket '{bucket}' does not exist{endpoint}",
                     "check the url in the inventory ({url}), or create the bucket: aws s3 mb s3://{bucket}"),
    "AccessDenied": ("access denied to {url}",
                     "the credentials {host} uses ({who}) need {perms} on bucket '{bucket}'"),
    "AllAccessDisabled": ("all access to bucket '{bucket}' is disabled", "ask the bucket's owner"),
    "ExpiredToken": ("the AWS credentials on {host} have expired (bucket '{bucket}')", "renew them on {host}: {login}"),
    "InvalidAccessKeyId": ("the access key id {host} uses ({who}) is not known to S3{endpoint} (bucket '{bucket}')",
                           "check the credentials configured on {host}"),
    "SignatureDoesNotMatch": ("S3 rejected the secret key {host} uses ({who}) (bucket '{bucket}')",
                              "check the credentials configured on {host}"),
    "InvalidToken": ("S3 rejected the session token on {host} (bucket '{bucket}')", "renew it on {host}: {login}"),
    "PermanentRedirect": ("bucket '{bucket}' is in another region", "set region: for this entry (or s3_settings)"),
    "AuthorizationHeaderMalformed": ("bucket '{bucket}' is in another region than the one used",
                                     "set region: for this entry (or s3_settings)"),
}
_ALIASES = {"403": "AccessDenied", "Forbidden": "AccessDenied", "ExpiredTokenException": "ExpiredToken",
            "RequestExpired": "ExpiredToken", "TokenRefreshRequired": "ExpiredToken", "404": "NoSuchBucket",
            "301": "PermanentRedirect"}

# messages without a service error code (raised by the CLI itself) → (message, hint)
_BY_TEXT: tuple[tuple[re.Pattern, str, str], ...] = (
    (re.compile(r"Unable to locate credentials|NoCredentialsError"),
     "no AWS credentials found on {host} for {url}",
     "configure them on {host} (aws configure{profile_flag}, an instance role, or AWS_* variables in its "
     "environment); agentsync never copies credentials between hosts"),
    (re.compile(r"config profile \((?P<p>[^)]*)\) could not be found"),
     "AWS profile '{p}' is not configured on {host} (needed for {url})",
     "add it to {host}'s ~/.aws/config, or change profile: in the inventory"),
    (re.compile(r"Could not connect to the endpoint URL|Connect timeout on endpoint URL|EndpointConnectionError"),
     "{host} cannot reach the S3 endpoint{endpoint} for {url}",
     "check that host's network and the endpoint_url / region in the inventory"),
    (re.compile(r"[Ee]xpired"), "the AWS credentials on {host} have expired (bucket '{bucket}')",
     "renew them on {host}: {login}"),
)


def _fields(entry: S3Entry, host: str) -> dict[str, str]:
    profile_flag = f" --profile {entry.profile}" if entry.profile else ""
    return {"bucket": entry.bucket, "url": entry.url, "host": host, "who": _who(entry),
            "endpoint": f" at {entry.endpoint_url}" if entry.endpoint_url else "",
            "perms": _PERMISSIONS[entry.direction] + (" and s3:DeleteObject" if entry.delete else ""),
            "login": f"aws sso login{profile_flag}, or fresh keys / session token", "profile_flag": profile_flag}


def diagnose(out: SyncOutput, exit_code: int, entry: S3Entry, host: str) -> Problem | None:
    """None if the sync did everything it should; else the explained problem."""
    if exit_code == 0 and not out.failed and not out.fatal:
        return None
    fields = _fields(entry, host)
    first = f"fatal error: {out.fatal}" if out.fatal else (out.failed or out.other or ("",))[0]
    said = scrub(first)
    for error in out.errors:
        known = _BY_CODE.get(_ALIASES.get(error.code, error.code))
        if known:
            return Problem(known[0].format(**fields), known[1].format(**fields), said, error.code)
    for pattern, message, hint in _BY_TEXT:
        if match := pattern.search("\n".join((out.fatal, *out.failed, *out.other))):
            extra = {**fields, **{k: v for k, v in match.groupdict().items() if v is not None}}
            return Problem(message.format(**extra), hint.format(**extra), said)
    code = out.errors[0].code if out.errors else ""
    if not said and out.warnings:
        count = len(out.warnings)
        return Problem(f"{count} file(s) were skipped by the CLI ({entry.url})",
                       "see the warnings: unreadable files, broken symlinks, sockets or devices",
                       scrub(out.warnings[0]), code)
    failed = f"{len(out.failed)} file(s) failed; " if out.failed else ""
    return Problem(f"aws s3 sync exited {exit_code} for {entry.url}: {failed}{said or 'no message'}".rstrip(),
                   f"run the command on {host} by hand to see more", said, code)
