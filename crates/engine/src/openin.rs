//! Open a task in an editor: `GET /api/tasks/{id}/open-in`.
//!
//! - `vscode_uri`: VS Code's Dev Containers "attach to a running container" URI,
//!   `vscode-remote://attached-container+<hex of {"containerName":"/anycode-<id>"}>/workspace`.
//!   VS Code runs its server inside the sandbox, so the editor's git and extensions
//!   run there, under the sandbox's limits and network policy.
//! - `folder`: where the task's files are on the host. The sandbox writes that
//!   folder, its `.git` included: host tools that run git in it (an editor's git
//!   integration, a shell prompt) would run the sandbox's git config on the host, so
//!   `folder_warning` says so and the UI offers the URI and the attach command first.
//! - `attach_command`: `anycode attach <id>`, the agent's terminal in a terminal.

use crate::{container_name, Engine, Result};
use anycode_git::taskrepo::SANDBOX_WORKDIR;

/// Ways to open a task outside the browser.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct OpenIn {
    /// VS Code (Dev Containers extension) attached to the task's sandbox at /workspace.
    pub vscode_uri: String,
    /// The container's name, for other editors' "attach to container".
    pub container_name: String,
    /// The task's working tree on the host.
    pub folder: String,
    /// Why opening `folder` with host tools that run git is unsafe.
    pub folder_warning: String,
    /// The agent's terminal in a terminal of this computer.
    pub attach_command: String,
}

/// The attached-container URI of container `name` at `folder` (an absolute path).
pub fn vscode_attached_uri(name: &str, folder: &str) -> String {
    let config = serde_json::json!({ "containerName": format!("/{name}") }).to_string();
    format!("vscode-remote://attached-container+{}{folder}", hex::encode(config))
}

impl Engine {
    /// How to open the task in an editor (see the module's notes).
    ///
    /// Errors: `TASK_NOT_FOUND`.
    pub async fn open_in(&self, task_id: &str) -> Result<OpenIn> {
        let task = self.task(task_id).await?;
        let name = container_name(&task.id);
        let folder_warning = if crate::remote::is_remote(&task) {
            // Its files are in a volume on its host; VS Code reaches the container
            // through that host (its `docker.host` setting or a Docker context).
            let host = self.stored_host(&task.host).await.map(|h| format!("{} ({})", h.name, h.endpoint)).unwrap_or_else(|_| task.host.clone());
            format!("this task runs on host {host}: its files are in a Docker volume there, not on this computer; point VS Code's Docker extension at that host (docker.host or a Docker context) to use the link, or use the attach command")
        } else {
            "the sandbox writes this folder, its .git included: tools that run git in it on this computer (an editor's git integration, a shell prompt) would run the sandbox's git configuration here; open the sandbox with the VS Code link or the attach command instead".into()
        };
        Ok(OpenIn {
            vscode_uri: vscode_attached_uri(&name, SANDBOX_WORKDIR),
            container_name: name,
            folder: task.worktree,
            folder_warning,
            attach_command: format!("anycode attach {}", task.id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::vscode_attached_uri;

    #[test]
    fn the_uri_names_the_container_in_hex_json() {
        let uri = vscode_attached_uri("anycode-abc", "/workspace");
        let hex_part = uri.strip_prefix("vscode-remote://attached-container+").unwrap().strip_suffix("/workspace").unwrap();
        let decoded = String::from_utf8(hex::decode(hex_part).unwrap()).unwrap();
        assert_eq!(decoded, r#"{"containerName":"/anycode-abc"}"#);
    }
}
