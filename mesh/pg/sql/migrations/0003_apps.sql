-- 0003: deployed app versions and the active one.

-- Every deployed version of an app's manifest, validated before it was stored.
CREATE TABLE mesh.app_versions (
    app text NOT NULL,
    version text NOT NULL,
    manifest jsonb NOT NULL,
    deployed_at timestamptz NOT NULL DEFAULT now(),
    activated_at timestamptz,
    PRIMARY KEY (app, version)
);

-- The version engines run for new jobs; switched in one commit by activation.
CREATE TABLE mesh.apps (
    app text PRIMARY KEY,
    active_version text NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (app, active_version) REFERENCES mesh.app_versions (app, version)
);
