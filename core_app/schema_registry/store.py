"""Subjects, versions and schema ids in PostgreSQL, so ids are stable across workers and restarts."""

from __future__ import annotations

from dataclasses import dataclass

import aiopg
import psycopg2.extras

from core_app.schema_registry.compat import fingerprint

DEFAULT_COMPATIBILITY = "BACKWARD"
GLOBAL = ""


@dataclass(frozen=True)
class SubjectVersion:
    subject: str
    version: int
    schema_id: int
    schema: str
    schema_type: str


class RegistryStore:
    def __init__(self, pool: aiopg.Pool) -> None:
        self.pool = pool

    async def _rows(self, sql: str, params: tuple[object, ...] = ()) -> list[dict[str, object]]:
        async with (
            self.pool.acquire() as conn,
            conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur,
        ):
            await cur.execute(sql, params)
            if cur.description is None:
                return []
            return [dict(r) for r in await cur.fetchall()]

    async def schema_by_id(self, schema_id: int) -> tuple[str, str] | None:
        rows = await self._rows(
            "SELECT schema, schema_type FROM schema_registry_schemas WHERE id = %s", (schema_id,)
        )
        return (str(rows[0]["schema"]), str(rows[0]["schema_type"])) if rows else None

    async def subjects(self) -> list[str]:
        rows = await self._rows(
            "SELECT DISTINCT subject FROM schema_registry_versions WHERE NOT deleted ORDER BY 1"
        )
        return [str(r["subject"]) for r in rows]

    async def versions(self, subject: str) -> list[SubjectVersion]:
        rows = await self._rows(
            """SELECT v.subject, v.version, v.schema_id, s.schema, s.schema_type
                 FROM schema_registry_versions v JOIN schema_registry_schemas s ON s.id = v.schema_id
                WHERE v.subject = %s AND NOT v.deleted ORDER BY v.version""",
            (subject,),
        )
        return [
            SubjectVersion(
                subject=str(r["subject"]),
                version=int(r["version"]),  # type: ignore[call-overload]
                schema_id=int(r["schema_id"]),  # type: ignore[call-overload]
                schema=str(r["schema"]),
                schema_type=str(r["schema_type"]),
            )
            for r in rows
        ]

    async def ids_for(self, schema_id: int) -> list[tuple[str, int]]:
        rows = await self._rows(
            "SELECT subject, version FROM schema_registry_versions"
            " WHERE schema_id = %s AND NOT deleted ORDER BY 1, 2",
            (schema_id,),
        )
        return [(str(r["subject"]), int(r["version"])) for r in rows]  # type: ignore[call-overload]

    async def compatibility(self, subject: str) -> str:
        rows = await self._rows(
            "SELECT subject, compatibility FROM schema_registry_config WHERE subject IN (%s, %s)",
            (subject, GLOBAL),
        )
        by_subject = {r["subject"]: str(r["compatibility"]) for r in rows}
        return by_subject.get(subject) or by_subject.get(GLOBAL) or DEFAULT_COMPATIBILITY

    async def set_compatibility(self, subject: str, level: str) -> None:
        await self._rows(
            """INSERT INTO schema_registry_config (subject, compatibility) VALUES (%s, %s)
               ON CONFLICT (subject) DO UPDATE SET compatibility = EXCLUDED.compatibility""",
            (subject, level),
        )

    async def register(self, subject: str, schema: str, schema_type: str) -> tuple[int, int]:
        """Store `schema` as the subject's next version (or find it); returns (id, version).

        One transaction under an advisory lock per subject: concurrent workers registering the
        same schema get the same id and version.
        """
        digest = fingerprint(schema_type, schema)
        async with self.pool.acquire() as conn, conn.cursor() as cur:
            await cur.execute("BEGIN")
            try:
                await cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (subject,))
                await cur.execute(
                    """INSERT INTO schema_registry_schemas (schema_type, schema, fingerprint)
                       VALUES (%s, %s, %s) ON CONFLICT (fingerprint) DO UPDATE
                       SET fingerprint = EXCLUDED.fingerprint RETURNING id""",
                    (schema_type, schema, digest),
                )
                schema_id = (await cur.fetchone())[0]
                await cur.execute(
                    """SELECT version FROM schema_registry_versions
                        WHERE subject = %s AND schema_id = %s AND NOT deleted""",
                    (subject, schema_id),
                )
                found = await cur.fetchone()
                if found is None:
                    await cur.execute(
                        """INSERT INTO schema_registry_versions (subject, version, schema_id)
                           SELECT %s, COALESCE(MAX(version), 0) + 1, %s
                             FROM schema_registry_versions WHERE subject = %s
                           RETURNING version""",
                        (subject, schema_id, subject),
                    )
                    found = await cur.fetchone()
                await cur.execute("COMMIT")
            except BaseException:
                await cur.execute("ROLLBACK")
                raise
        return int(schema_id), int(found[0])

    async def delete_subject(self, subject: str) -> list[int]:
        rows = await self._rows(
            """UPDATE schema_registry_versions SET deleted = true
                WHERE subject = %s AND NOT deleted RETURNING version""",
            (subject,),
        )
        return sorted(int(r["version"]) for r in rows)  # type: ignore[call-overload]
