// User management (admins): every user with their role and state; make or unmake an admin,
// disable or enable an account, set a new password. Written against the contract in
// api/pending.ts; while the server does not offer it, the page says so.
import { useState, type FormEvent } from "react";
import {
  errorText,
  isMissingEndpoint,
  listUsers,
  resetUserPassword,
  updateUser,
} from "../api/client";
import type { UserPatch, UserRow } from "../api/types";
import { useApp, useLoad } from "../app/context";
import { Empty, ErrorBox, FormError, Loading } from "../components/States";

type Roles = UserRow["roles"];

/** `roles` with "admin" added or taken away; never empty (a plain user is ["user"]). */
export function withAdmin(roles: Roles, admin: boolean): Roles {
  const rest = roles.filter((r) => r !== "admin");
  if (admin) return [...rest, "admin"];
  return rest.length ? rest : ["user"];
}

const NOT_OFFERED =
  "User management is not available on this server yet: it does not offer /api/users. " +
  "Once it does, this page lists every user.";

function reason(e: unknown): string {
  if (isMissingEndpoint(e)) return "this server does not offer that yet";
  return errorText(e);
}

export function UsersView() {
  const { api, admin } = useApp();
  const users = useLoad(
    (signal) => (admin ? listUsers(api, signal) : Promise.resolve({ users: [] as UserRow[] })),
    [api, admin],
  );
  if (!admin) {
    return (
      <section aria-labelledby="users-h">
        <h1 id="users-h">Users</h1>
        <Empty>Only admins manage users.</Empty>
      </section>
    );
  }
  return (
    <section aria-labelledby="users-h">
      <div className="view-head">
        <h1 id="users-h">Users</h1>
      </div>
      {users.loading && !users.data ? (
        <Loading />
      ) : users.error ? (
        isMissingEndpoint(users.error) ? (
          <p className="notice warn" role="status">
            {NOT_OFFERED}
          </p>
        ) : (
          <ErrorBox error={users.error} onRetry={users.reload} />
        )
      ) : users.data ? (
        <UserTable
          users={users.data.users}
          onChanged={(row) =>
            users.setData({
              users: users.data!.users.map((u) => (u.id === row.id ? row : u)),
            })
          }
          reload={users.reload}
        />
      ) : null}
    </section>
  );
}

function UserTable({
  users,
  onChanged,
  reload,
}: {
  users: UserRow[];
  onChanged: (row: UserRow) => void;
  reload: () => void;
}) {
  const { api, session, notify } = useApp();
  const [busy, setBusy] = useState<string | null>(null);
  const [resetting, setResetting] = useState<string | null>(null);
  const patch = async (u: UserRow, change: UserPatch, done: string) => {
    setBusy(u.id);
    try {
      const row = await updateUser(api, u.id, change);
      if (row && typeof row === "object" && row.id === u.id) onChanged(row);
      else reload();
      notify(done);
    } catch (e) {
      notify(`Could not change ${u.username}: ${reason(e)}`);
    } finally {
      setBusy(null);
    }
  };
  if (users.length === 0) return <Empty>No users.</Empty>;
  return (
    <div className="table-wrap">
      <table className="members users" aria-label="Users">
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            <th scope="col">State</th>
            <th scope="col" className="col-created">
              Joined
            </th>
            <th scope="col">
              <span className="sr-only">Actions</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {users.map((u) => {
            const isAdmin = u.roles.includes("admin");
            const me = u.id === session?.user_id;
            const selfNote = me ? "Not on your own account" : undefined;
            return (
              <tr key={u.id} data-user={u.id}>
                <th scope="row">
                  {u.username}
                  {me && <span className="muted small"> (you)</span>}
                </th>
                <td>{isAdmin ? "admin" : "user"}</td>
                <td>
                  <span className={`badge ${u.disabled ? "failed" : "done"}`}>
                    {u.disabled ? "disabled" : "active"}
                  </span>
                </td>
                <td className="col-created muted">
                  {u.created_at ? new Date(u.created_at).toLocaleDateString() : "—"}
                </td>
                <td className="user-actions">
                  <button
                    type="button"
                    className="text-button"
                    disabled={busy === u.id || me}
                    title={selfNote}
                    aria-label={
                      isAdmin
                        ? `Remove admin role from ${u.username}`
                        : `Make ${u.username} an admin`
                    }
                    onClick={() =>
                      void patch(
                        u,
                        { roles: withAdmin(u.roles, !isAdmin) },
                        `${u.username} is ${isAdmin ? "no longer an admin" : "an admin now"}.`,
                      )
                    }
                  >
                    {isAdmin ? "Remove admin" : "Make admin"}
                  </button>
                  <button
                    type="button"
                    className={`text-button ${u.disabled ? "" : "danger"}`}
                    disabled={busy === u.id || me}
                    title={selfNote}
                    aria-label={`${u.disabled ? "Enable" : "Disable"} ${u.username}`}
                    onClick={() =>
                      void patch(
                        u,
                        { disabled: !u.disabled },
                        `${u.username} is ${u.disabled ? "enabled" : "disabled"}.`,
                      )
                    }
                  >
                    {u.disabled ? "Enable" : "Disable"}
                  </button>
                  {resetting === u.id ? (
                    <ResetPassword user={u} onDone={() => setResetting(null)} />
                  ) : (
                    <button
                      type="button"
                      className="text-button"
                      aria-label={`Reset the password of ${u.username}`}
                      onClick={() => setResetting(u.id)}
                    >
                      Reset password
                    </button>
                  )}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
    </div>
  );
}

function ResetPassword({ user, onDone }: { user: UserRow; onDone: () => void }) {
  const { api, notify } = useApp();
  const [password, setPassword] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await resetUserPassword(api, user.id, password);
      notify(`New password set for ${user.username}.`);
      onDone();
    } catch (err) {
      setError(reason(err));
      setBusy(false);
    }
  };
  return (
    <form className="inline-form reset" onSubmit={(e) => void submit(e)}>
      <input
        type="password"
        autoComplete="new-password"
        aria-label={`New password for ${user.username}`}
        placeholder="New password"
        value={password}
        onChange={(e) => setPassword(e.target.value)}
        required
      />
      <button type="submit" className="primary" disabled={busy || !password}>
        Set
      </button>
      <button type="button" className="text-button" onClick={onDone}>
        Cancel
      </button>
      <FormError error={error} />
    </form>
  );
}
