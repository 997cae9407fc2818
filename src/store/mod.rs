//! Durable state in sled: topologies, instances and their desired state; the only module that touches sled.
//!
//! Every write is flushed before it is acknowledged, so that a direct method that
//! answered 200/201 survives `kill -9`. Keys are `{generation}/{name}`: LVA and AVA
//! entities live side by side, each generation's methods see only their own.

use crate::topology::Generation;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::path::Path;

/// Bumped when the stored shapes change; `open` refuses a newer database and
/// migrates older ones.
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("state database: {0}")]
    Sled(#[from] sled::Error),
    #[error("state database holds a corrupt record under {key}: {source}")]
    Corrupt { key: String, source: serde_json::Error },
    #[error("state database has schema version {found}, newer than this Vela understands ({SCHEMA_VERSION}); upgrade Vela or move the state directory")]
    TooNew { found: u32 },
}

/// Creation and modification times, as the API returns them (`systemData`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SystemData {
    pub created_at: String,
    pub last_modified_at: String,
}

/// A topology as submitted (the document is kept verbatim so Get returns what was Set).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredTopology {
    pub name: String,
    pub generation: Generation,
    pub api_version: String,
    pub system_data: SystemData,
    /// The `properties` object as submitted.
    pub properties: serde_json::Value,
    /// Where it came from: a direct method or a file under `config/topologies`.
    pub origin: Origin,
}

/// An instance (live pipeline) and whether the user wants it running.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StoredInstance {
    pub name: String,
    pub generation: Generation,
    pub api_version: String,
    pub system_data: SystemData,
    pub topology_name: String,
    pub description: Option<String>,
    /// `(name, value)`; secret values are stored (the device is the trust boundary)
    /// but never returned by Get/List.
    pub parameters: Vec<(String, String)>,
    /// Desired state: activated instances are activated again after a restart.
    pub active: bool,
    pub origin: Origin,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Origin {
    Method,
    File(String),
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    topologies: sled::Tree,
    instances: sled::Tree,
}

fn gen_key(g: Generation, name: &str) -> String {
    match g {
        Generation::Lva => format!("lva/{name}"),
        Generation::Ava => format!("ava/{name}"),
    }
}

impl Store {
    /// Opens (or creates) the database under `dir`. The cache is kept small: the
    /// entities are tiny and the appliance's memory belongs to video.
    pub fn open(dir: &Path) -> Result<Store, StoreError> {
        let db = sled::Config::new().path(dir).cache_capacity(8 << 20).flush_every_ms(Some(500)).open()?;
        let meta = db.open_tree("meta")?;
        match meta.get("schema_version")? {
            Some(v) => {
                let found = std::str::from_utf8(&v).ok().and_then(|s| s.parse::<u32>().ok()).unwrap_or(u32::MAX);
                if found > SCHEMA_VERSION {
                    return Err(StoreError::TooNew { found });
                }
            }
            None => {
                meta.insert("schema_version", SCHEMA_VERSION.to_string().as_bytes())?;
                db.flush()?;
            }
        }
        Ok(Store { topologies: db.open_tree("topologies")?, instances: db.open_tree("instances")?, db })
    }

    fn put<T: Serialize>(&self, tree: &sled::Tree, key: String, v: &T) -> Result<(), StoreError> {
        let bytes = serde_json::to_vec(v).expect("stored entities serialise");
        tree.insert(key.as_bytes(), bytes)?;
        self.db.flush()?;
        Ok(())
    }

    fn get<T: DeserializeOwned>(&self, tree: &sled::Tree, key: String) -> Result<Option<T>, StoreError> {
        match tree.get(key.as_bytes())? {
            Some(b) => serde_json::from_slice(&b).map(Some).map_err(|source| StoreError::Corrupt { key, source }),
            None => Ok(None),
        }
    }

    fn all<T: DeserializeOwned>(&self, tree: &sled::Tree, g: Generation) -> Result<Vec<T>, StoreError> {
        let prefix = gen_key(g, "");
        tree.scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                serde_json::from_slice(&v).map_err(|source| StoreError::Corrupt { key: String::from_utf8_lossy(&k).into_owned(), source })
            })
            .collect()
    }

    fn remove(&self, tree: &sled::Tree, key: String) -> Result<bool, StoreError> {
        let existed = tree.remove(key.as_bytes())?.is_some();
        self.db.flush()?;
        Ok(existed)
    }

    pub fn put_topology(&self, t: &StoredTopology) -> Result<(), StoreError> {
        self.put(&self.topologies, gen_key(t.generation, &t.name), t)
    }

    pub fn topology(&self, g: Generation, name: &str) -> Result<Option<StoredTopology>, StoreError> {
        self.get(&self.topologies, gen_key(g, name))
    }

    /// All topologies of a generation, ordered by name.
    pub fn topologies(&self, g: Generation) -> Result<Vec<StoredTopology>, StoreError> {
        self.all(&self.topologies, g)
    }

    pub fn remove_topology(&self, g: Generation, name: &str) -> Result<bool, StoreError> {
        self.remove(&self.topologies, gen_key(g, name))
    }

    pub fn put_instance(&self, i: &StoredInstance) -> Result<(), StoreError> {
        self.put(&self.instances, gen_key(i.generation, &i.name), i)
    }

    pub fn instance(&self, g: Generation, name: &str) -> Result<Option<StoredInstance>, StoreError> {
        self.get(&self.instances, gen_key(g, name))
    }

    /// All instances of a generation, ordered by name.
    pub fn instances(&self, g: Generation) -> Result<Vec<StoredInstance>, StoreError> {
        self.all(&self.instances, g)
    }

    pub fn remove_instance(&self, g: Generation, name: &str) -> Result<bool, StoreError> {
        self.remove(&self.instances, gen_key(g, name))
    }

    pub fn schema_version(&self) -> Result<u32, StoreError> {
        let meta = self.db.open_tree("meta")?;
        Ok(meta.get("schema_version")?.and_then(|v| std::str::from_utf8(&v).ok()?.parse().ok()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sd() -> SystemData {
        SystemData { created_at: "2026-01-01T00:00:00.000Z".into(), last_modified_at: "2026-01-01T00:00:00.000Z".into() }
    }

    fn topo(g: Generation, name: &str) -> StoredTopology {
        StoredTopology {
            name: name.into(),
            generation: g,
            api_version: "1.1".into(),
            system_data: sd(),
            properties: serde_json::json!({"sources": []}),
            origin: Origin::Method,
        }
    }

    #[test]
    fn entities_survive_reopening_and_generations_are_apart() {
        let dir = tempdir();
        {
            let s = Store::open(&dir).unwrap();
            s.put_topology(&topo(Generation::Ava, "b")).unwrap();
            s.put_topology(&topo(Generation::Ava, "a")).unwrap();
            s.put_topology(&topo(Generation::Lva, "a")).unwrap();
            s.put_instance(&StoredInstance {
                name: "cam".into(),
                generation: Generation::Ava,
                api_version: "1.1".into(),
                system_data: sd(),
                topology_name: "a".into(),
                description: None,
                parameters: vec![("rtspUrl".into(), "rtsp://x/y".into())],
                active: true,
                origin: Origin::File("config/instances/cam.json".into()),
            })
            .unwrap();
        }
        let s = Store::open(&dir).unwrap();
        assert_eq!(s.schema_version().unwrap(), SCHEMA_VERSION);
        let names: Vec<_> = s.topologies(Generation::Ava).unwrap().into_iter().map(|t| t.name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(s.topologies(Generation::Lva).unwrap().len(), 1);
        let i = s.instance(Generation::Ava, "cam").unwrap().unwrap();
        assert!(i.active);
        assert!(s.instance(Generation::Lva, "cam").unwrap().is_none());
        assert!(s.remove_topology(Generation::Ava, "b").unwrap());
        assert!(!s.remove_topology(Generation::Ava, "b").unwrap());
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempdir();
        {
            let db = sled::open(&dir).unwrap();
            db.open_tree("meta").unwrap().insert("schema_version", "99").unwrap();
            db.flush().unwrap();
        }
        assert!(matches!(Store::open(&dir), Err(StoreError::TooNew { found: 99 })));
        std::fs::remove_dir_all(dir).ok();
    }

    fn tempdir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("vela-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
