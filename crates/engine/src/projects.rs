//! Projects: git repositories the owner added. AnyCode only reads them here; a
//! project's repository changes only through `taskrepo.rs` (a task branch).

use crate::{blocking, Branches, Engine, Error, Project, Result};
use std::path::Path;

impl Engine {
    /// Adds the git repository at `path` (absolute, or relative to the server's
    /// working directory) as a project.
    ///
    /// Errors: `PATH_NOT_FOUND`, `NOT_A_REPOSITORY`, `ALREADY_EXISTS`.
    pub async fn add_project(&self, path: &str) -> Result<Project> {
        let path = path.trim().to_string();
        if path.is_empty() {
            return Err(Error::Invalid("path is empty: give the path of a git repository".into()));
        }
        self.db(move |store| {
            let info = anycode_git::inspect_repo(Path::new(&path))?;
            let root = info.root.to_string_lossy().into_owned();
            if let Some(existing) = store.projects()?.into_iter().find(|p| p.path == root) {
                return Err(Error::Conflict(format!("{root} is already the project {:?}", existing.name)));
            }
            let default_branch = info.current_branch.unwrap_or_else(|| "main".into());
            let p = Project { id: anycode_core::new_id(), name: info.name, path: root, default_branch };
            store.insert_project(&p)?;
            Ok(p)
        })
        .await
    }

    /// All projects, oldest first.
    pub async fn projects(&self) -> Result<Vec<Project>> {
        self.db(move |store| Ok(store.projects()?)).await
    }

    /// One project. Errors: `PROJECT_NOT_FOUND`.
    pub async fn project(&self, id: &str) -> Result<Project> {
        let id = id.to_string();
        self.db(move |store| store.project(&id)?.ok_or(Error::NotFound { what: "project", id })).await
    }

    /// Removes a project from AnyCode (the repository is untouched).
    /// Errors: `PROJECT_NOT_FOUND`; `CONFLICT` while it has tasks.
    pub async fn delete_project(&self, id: &str) -> Result<()> {
        let p = self.project(id).await?;
        self.db(move |store| {
            let n = store.tasks(Some(&p.id))?.len();
            if n > 0 {
                return Err(Error::Conflict(format!("project {:?} still has {n} task(s): delete them first", p.name)));
            }
            store.delete_project(&p.id)?;
            Ok(())
        })
        .await
    }

    /// The project's local branches and its current branch.
    pub async fn branches(&self, project_id: &str) -> Result<Branches> {
        let p = self.project(project_id).await?;
        blocking(move || Ok(anycode_git::branches(Path::new(&p.path))?)).await
    }
}
