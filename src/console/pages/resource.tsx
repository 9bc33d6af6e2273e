/**
 * The generic list and detail pages every kind shares: a list with status and filters, a detail
 * view of the resource, create/edit forms from the kind's schema and a confirmed delete. Kinds add
 * their own columns, actions and detail sections (src/console/pages/kinds.tsx).
 */
import type { ComponentChildren, JSX } from 'preact';
import { useCallback, useEffect, useState } from 'preact/hooks';
import * as api from '../api.js';
import { useLive } from '../live.js';
import { navigate } from '../router.js';
import { valuesOf } from '../schema.js';
import { Confirm, Dialog, Link, Notice, SchemaForm, Status, Table, errorText, type FormOptions } from '../ui.js';

export type Msg = { kind: 'ok' | 'error'; text: string } | null;

export interface DetailProps {
  view: api.View;
  reload: () => void;
  notify: (m: Msg) => void;
}

export interface KindPage {
  kind: string;
  collection: string;
  title: string;
  singular: string;
  /** Columns after name and status. */
  columns?: { title: string; cell: (v: api.View) => ComponentChildren }[];
  /** Other kinds whose changes alter this list (a connection's state changes with its gateway). */
  alsoLive?: readonly string[];
  form?: FormOptions;
  /** Create/edit form options when they differ (PSK hidden on edit). */
  editForm?: FormOptions;
  creatable?: boolean;
  deletable?: boolean;
  /** Actions on the detail page, beside Edit and Delete. */
  Actions?: (p: DetailProps) => JSX.Element | null;
  /** Sections below the detail's properties. */
  Detail?: (p: DetailProps) => JSX.Element | null;
  /** Refetch the detail this often (ms) for counters that change without a change event (bytes). */
  refreshMs?: number;
  /** Fields of the view not shown in the properties list (shown by Detail). */
  hideProps?: readonly string[];
}

function pascal(kebab: string): string {
  return kebab.split('-').map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

export function useSchema(kind: string): { schema: api.Schema | null; err: string | null } {
  const [schema, setSchema] = useState<api.Schema | null>(null);
  const [err, setErr] = useState<string | null>(null);
  useEffect(() => {
    api.kindSchemas().then((all) => setSchema(all[`${pascal(kind)}Spec`] ?? null), (e: unknown) => setErr(errorText(e)));
  }, [kind]);
  return { schema, err };
}

/** Loads a list and keeps it current (server-sent events, or polling while they are down). */
export function useList(collection: string, kinds: readonly string[]): { items: api.View[] | null; err: string | null; reload: () => void } {
  const [items, setItems] = useState<api.View[] | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const reload = useCallback(() => {
    api.list(collection).then((p) => {
      setItems(p.items);
      setErr(null);
    }, (e: unknown) => setErr(errorText(e)));
  }, [collection]);
  useEffect(reload, [reload]);
  useLive(kinds, reload);
  return { items, err, reload };
}

export function ListPage({ page }: { page: KindPage }) {
  const { items, err, reload } = useList(page.collection, [page.kind, ...(page.alsoLive ?? [])]);
  const [filter, setFilter] = useState('');
  const [status, setStatus] = useState('');
  const [creating, setCreating] = useState(false);
  const [msg, setMsg] = useState<Msg>(null);
  const { schema } = useSchema(page.kind);
  const statuses = [...new Set((items ?? []).map((v) => v.status))].sort();
  const shown = (items ?? []).filter((v) => (!status || v.status === status) && (!filter || JSON.stringify(v).toLowerCase().includes(filter.toLowerCase())));
  return (
    <div>
      <div class="page-head">
        <h1>{page.title}</h1>
        {page.creatable !== false && (
          <button type="button" class="primary" onClick={() => setCreating(true)} disabled={!schema}>
            New {page.singular}
          </button>
        )}
      </div>
      <Notice msg={msg} onDone={() => setMsg(null)} />
      <div class="filters" role="search">
        <label>
          Filter <input type="search" value={filter} onInput={(e) => setFilter((e.currentTarget as HTMLInputElement).value)} placeholder="name, address, ..." />
        </label>
        <label>
          Status{' '}
          <select value={status} onChange={(e) => setStatus((e.currentTarget as HTMLSelectElement).value)}>
            <option value="">all</option>
            {statuses.map((s) => <option key={s} value={s}>{s}</option>)}
          </select>
        </label>
        <span class="count" aria-live="polite">{items ? `${shown.length} of ${items.length}` : 'loading…'}</span>
      </div>
      {err && <p class="error" role="alert">{err}</p>}
      {items && (
        <Table
          caption={page.title}
          rows={shown}
          rowKey={(v) => v.id}
          empty={items.length ? 'Nothing matches the filter.' : `No ${page.title.toLowerCase()} yet.`}
          cols={[
            { title: 'Name', cell: (v) => <Link href={`/${page.collection}/${encodeURIComponent(v.name)}`}>{v.name}</Link> },
            { title: 'Status', cell: (v) => <Status value={v.status} /> },
            ...(page.columns ?? []),
          ]}
        />
      )}
      {creating && schema && (
        <Dialog title={`New ${page.singular}`} onClose={() => setCreating(false)} wide>
          <SchemaForm
            schema={schema}
            opts={page.form}
            submitLabel="Create"
            onCancel={() => setCreating(false)}
            onSubmit={async (body) => {
              const v = await api.create(page.collection, body);
              setCreating(false);
              setMsg({ kind: 'ok', text: `${page.singular} ${v.name} created.` });
              reload();
            }}
          />
        </Dialog>
      )}
    </div>
  );
}

function show(v: unknown): ComponentChildren {
  if (v === null || v === undefined) return '-';
  if (Array.isArray(v) && v.every((x) => typeof x !== 'object')) return v.join(', ') || '-';
  if (typeof v === 'object' && Object.keys(v).length === 0) return <em>(write-only: not shown)</em>;
  if (typeof v === 'object') return <pre>{JSON.stringify(v, null, 2)}</pre>;
  return String(v);
}

export function DetailPage({ page, name }: { page: KindPage; name: string }) {
  const [view, setView] = useState<api.View | null>(null);
  const [err, setErr] = useState<string | null>(null);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const [msg, setMsg] = useState<Msg>(null);
  const { schema } = useSchema(page.kind);
  const reload = useCallback(() => {
    api.get(page.collection, name).then((v) => {
      setView(v);
      setErr(null);
    }, (e: unknown) => setErr(errorText(e)));
  }, [page.collection, name]);
  useEffect(() => {
    reload();
    if (!page.refreshMs) return undefined;
    const t = setInterval(reload, page.refreshMs);
    return () => clearInterval(t);
  }, [reload]);
  useLive([page.kind, ...(page.alsoLive ?? [])], reload);
  if (!view) return <div><h1>{name}</h1>{err ? <p class="error" role="alert">{err}</p> : <p>Loading…</p>}</div>;
  const props = { view, reload, notify: setMsg };
  const hidden = new Set(['id', 'name', 'status', ...(page.hideProps ?? [])]);
  return (
    <div>
      <nav class="crumbs" aria-label="Breadcrumb"><Link href={`/${page.collection}`}>{page.title}</Link> / <span aria-current="page">{view.name}</span></nav>
      <div class="page-head">
        <h1>{view.name} <Status value={view.status} /></h1>
        <div class="actions">
          {page.Actions && <page.Actions {...props} />}
          <button type="button" onClick={() => setEditing(true)} disabled={!schema}>Edit</button>
          {page.deletable !== false && <button type="button" class="danger" onClick={() => setDeleting(true)}>Delete</button>}
        </div>
      </div>
      <Notice msg={msg} onDone={() => setMsg(null)} />
      {err && <p class="error" role="alert">{err}</p>}
      {typeof view.status_reason === 'string' && view.status !== 'ACTIVE' && !view.last_error && <p class="reason">{view.status_reason}</p>}
      {page.Detail && <page.Detail {...props} />}
      <section>
        <h2>Properties</h2>
        <dl class="props">
          <dt>id</dt>
          <dd><code>{view.id}</code></dd>
          {Object.entries(view).filter(([k]) => !hidden.has(k)).map(([k, v]) => [<dt key={`${k}t`}>{k}</dt>, <dd key={`${k}d`}>{show(v)}</dd>])}
        </dl>
      </section>
      {editing && schema && (
        <Dialog title={`Edit ${page.singular} ${view.name}`} onClose={() => setEditing(false)} wide>
          <SchemaForm
            schema={schema}
            initial={valuesOf(schema, view)}
            opts={page.editForm ?? page.form}
            fixed={['name']}
            partial
            submitLabel="Save"
            onCancel={() => setEditing(false)}
            onSubmit={async (body) => {
              const { name: _n, ...rest } = body;
              await api.replace(page.collection, view.name, rest);
              setEditing(false);
              setMsg({ kind: 'ok', text: 'Saved.' });
              reload();
            }}
          />
        </Dialog>
      )}
      {deleting && (
        <Confirm
          title={`Delete ${page.singular} ${view.name}?`}
          message={`This removes ${view.name} from the gateway at once.`}
          confirmLabel="Delete"
          onClose={() => setDeleting(false)}
          onConfirm={async () => {
            await api.remove(page.collection, view.name);
            navigate(`/${page.collection}`);
          }}
        />
      )}
    </div>
  );
}
