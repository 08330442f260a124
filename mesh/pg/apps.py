"""Deployed app versions and activation: ``deployed`` and ``active`` are distinct states.

Deploying stores a validated manifest under its version (idempotent for the same content,
refused for different content under a version already used). Activating switches the app's
active version in one commit and tells the quorum in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from mesh.errors import UnknownVersion, VersionConflict
from mesh.model.graph.manifest import Manifest, decode_manifest
from mesh.model.quorum import Activate
from mesh.pg.database import Connection
from mesh.pg.queries import query
from mesh.pg.quorum import check_signing, publish


@dataclass(frozen=True, slots=True)
class AppVersion:
    version: str
    deployed_at: datetime
    activated_at: datetime | None
    active: bool


def deploy(conn: Connection, manifest: Manifest) -> bool:
    """Store ``manifest`` (already validated); True if new, False if that exact version was
    already deployed. :class:`VersionConflict` if the version exists with other content."""
    body = msgspec.json.encode(manifest).decode()
    app, version = manifest.app.id, manifest.app.version
    params = {"app": app, "version": version, "manifest": body}
    inserted = conn.execute(query("deploy_version"), params).fetchone() is not None
    if inserted:
        return True
    # A statement of its own: it sees a version a concurrent deploy committed while the
    # insert waited for it.
    row = conn.execute(query("deployed_manifest"), params).fetchone()
    if row is None:
        raise VersionConflict(
            f"version {version!r} of app {app!r} was removed while this deploy read it; "
            "deploy again"
        )
    if decode_manifest(row[0]) != manifest:
        raise VersionConflict(
            f"version {version!r} of app {app!r} is already deployed with a different manifest; "
            "deployed versions never change: give this one a new app.version"
        )
    return False


def activate(
    conn: Connection, app: str, version: str, *, secret: bytes | None = None, sender: str = ""
) -> None:
    """Make ``version`` the active one and broadcast ``activate`` when that commits.

    Raises :class:`~mesh.errors.SigningRequired`, changing nothing, when the app's nodes sign
    their control messages and ``secret`` is not theirs."""
    with conn.transaction():
        check_signing(conn, app, secret)
        row = conn.execute(query("activate_version"), {"app": app, "version": version}).fetchone()
        if row is None:
            known = [v.version for v in versions(conn, app)]
            raise UnknownVersion(
                f"version {version!r} of app {app!r} is not deployed "
                f"(deployed: {', '.join(known) or 'none'}); run `mesh deploy` first"
            )
        publish(conn, app, Activate(sender=sender, version=version), secret=secret)


def announce_activation(
    conn: Connection,
    app: str,
    version: str,
    delay: float,
    *,
    secret: bytes | None = None,
    sender: str = "",
) -> None:
    """Tell the quorum that ``version`` becomes active in ``delay`` seconds (the caller
    activates it then). Refused now, changing nothing, for a version that is not deployed
    or a secret that is not the mesh's."""
    with conn.transaction():
        check_signing(conn, app, secret)
        known = [v.version for v in versions(conn, app)]
        if version not in known:
            raise UnknownVersion(
                f"version {version!r} of app {app!r} is not deployed "
                f"(deployed: {', '.join(known) or 'none'}); run `mesh deploy` first"
            )
        publish(conn, app, Activate(sender=sender, version=version, delay=delay), secret=secret)


def versions(conn: Connection, app: str) -> list[AppVersion]:
    return [AppVersion(*row) for row in conn.execute(query("app_versions"), {"app": app})]


def active_manifest(conn: Connection, app: str) -> tuple[str, Manifest] | None:
    row = conn.execute(query("active_manifest"), {"app": app}).fetchone()
    if row is None:
        return None
    return row[0], decode_manifest(row[1])
