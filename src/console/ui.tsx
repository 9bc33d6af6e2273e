/** Shared pieces of the console's pages: dialogs, status badges, schema-driven forms, formatting. */
import type { ComponentChildren, JSX } from 'preact';
import { useEffect, useLayoutEffect, useRef, useState } from 'preact/hooks';
import * as api from './api.js';
import { ApiError, type Schema } from './api.js';
import { bodyOf, fieldKind, fieldOfServerError, join, unwrap, validate, type FieldErrors, type FormValues } from './schema.js';
import { onLinkClick } from './router.js';

export function Link(p: { href: string; children: ComponentChildren; class?: string }) {
  return <a href={p.href} class={p.class} onClick={onLinkClick}>{p.children}</a>;
}

const GOOD = new Set(['ACTIVE', 'ESTABLISHED', 'ACCEPTED', 'LISTENING', 'INSTALLED', 'ok']);
const WAIT = new Set(['PENDING_CREATE', 'PENDING_UPDATE', 'PENDING_ACCEPTANCE', 'CONNECTING', 'REKEYING', 'DELETING']);

/** A status in words and colour (green good, amber in progress, red down/failed); colour is never the only cue. */
export function Status({ value }: { value: unknown }) {
  const v = String(value ?? 'UNKNOWN');
  const cls = GOOD.has(v) ? 'good' : WAIT.has(v) ? 'wait' : 'bad';
  return <span class={`status ${cls}`} data-status={v}>{v}</span>;
}

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

/**
 * A modal dialog: focus moves into it and stays there (Tab wraps), Escape closes it, and focus
 * returns to what had it before.
 */
export function Dialog(p: { title: string; onClose: () => void; children: ComponentChildren; wide?: boolean }) {
  const ref = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current!;
    const first = el.querySelector<HTMLElement>('[autofocus]') ?? el.querySelector<HTMLElement>(FOCUSABLE) ?? el;
    first.focus();
    return () => before?.focus?.();
  }, []);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      p.onClose();
      return;
    }
    if (e.key !== 'Tab') return;
    const items = [...ref.current!.querySelectorAll<HTMLElement>(FOCUSABLE)];
    if (!items.length) return;
    const first = items[0]!;
    const last = items[items.length - 1]!;
    if (e.shiftKey && document.activeElement === first) {
      e.preventDefault();
      last.focus();
    } else if (!e.shiftKey && document.activeElement === last) {
      e.preventDefault();
      first.focus();
    }
  };
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && p.onClose()}>
      <div class={`dialog${p.wide ? ' wide' : ''}`} role="dialog" aria-modal="true" aria-labelledby="dialog-title" ref={ref} tabIndex={-1} onKeyDown={onKey}>
        <h2 id="dialog-title">{p.title}</h2>
        {p.children}
      </div>
    </div>
  );
}

/** Asks before a destructive action; runs it and shows its error in the dialog. */
export function Confirm(p: { title: string; message: ComponentChildren; confirmLabel: string; onConfirm: () => Promise<unknown>; onClose: () => void }) {
  const [busy, setBusy] = useState(false);
  const [err, setErr] = useState<string | null>(null);
  const go = async () => {
    setBusy(true);
    setErr(null);
    try {
      await p.onConfirm();
      p.onClose();
    } catch (e) {
      setErr(errorText(e));
      setBusy(false);
    }
  };
  return (
    <Dialog title={p.title} onClose={p.onClose}>
      <p>{p.message}</p>
      {err && <p class="error" role="alert">{err}</p>}
      <div class="buttons">
        <button type="button" onClick={p.onClose}>Cancel</button>
        <button type="button" class="danger" disabled={busy} onClick={go}>{p.confirmLabel}</button>
      </div>
    </Dialog>
  );
}

export function errorText(e: unknown): string {
  if (e instanceof ApiError) return `${e.message} (${e.code})`;
  return e instanceof Error ? e.message : String(e);
}

/** A notice at the top of a page (success or failure of the last action). */
export function Notice({ msg, onDone }: { msg: { kind: 'ok' | 'error'; text: string } | null; onDone: () => void }) {
  if (!msg) return null;
  return (
    <div class={`notice ${msg.kind}`} role={msg.kind === 'error' ? 'alert' : 'status'}>
      <span>{msg.text}</span>
      <button type="button" class="link" aria-label="Dismiss" onClick={onDone}>×</button>
    </div>
  );
}

export function bytes(n: unknown): string {
  const v = Number(n ?? 0);
  if (!Number.isFinite(v)) return '-';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let x = v;
  while (x >= 1024 && i < u.length - 1) {
    x /= 1024;
    i++;
  }
  return `${i ? x.toFixed(1) : Math.round(x)} ${u[i]}`;
}

export const rate = (n: unknown) => `${bytes(n)}/s`;

export function age(iso: unknown): string {
  if (typeof iso !== 'string') return '-';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return '-';
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

/** Fields are labelled with their YAML/API names, as the docs and the API's errors name them. */
const label = (k: string) => k;

/** Schema fields that the create form skips (write-only secrets are handled by their page). */
export interface FormOptions {
  /** Top-level fields left out of the form. */
  hide?: readonly string[];
  /** Fields shown as password inputs. */
  secret?: readonly string[];
  /** Sub-objects shown expanded (others start collapsed when nothing in them is required). */
  open?: readonly string[];
  /** Fields naming another resource: path → its collection (offered as suggestions). */
  refs?: Readonly<Record<string, string>>;
}

function FieldInput(p: { path: string; schema: Schema; required: boolean; values: FormValues; set: (path: string, v: string) => void; errors: FieldErrors; opts: FormOptions; disabled?: boolean; names?: Record<string, string[]> }) {
  const s = unwrap(p.schema);
  const kind = fieldKind(p.schema);
  const id = `f-${p.path.replace(/\W/g, '-')}`;
  const err = p.errors[p.path];
  const name = p.path.split('.').pop()!;
  const desc = typeof s.description === 'string' ? s.description : '';
  if (kind === 'object') {
    const props = (s.properties ?? {}) as Record<string, Schema>;
    const req = new Set((s.required ?? []) as string[]);
    const hasValue = Object.keys(p.values).some((k) => k.startsWith(`${p.path}.`) && p.values[k]);
    const hasErr = Object.keys(p.errors).some((k) => k === p.path || k.startsWith(`${p.path}.`));
    return (
      <details class="group" open={p.required || hasValue || hasErr || p.opts.open?.includes(p.path)}>
        <summary>{label(name)}{p.required ? ' *' : ''}</summary>
        {desc && <p class="hint">{desc}</p>}
        {err && <p class="field-error" id={`${id}-err`} data-field={p.path}>{err}</p>}
        {Object.entries(props).map(([k, ps]) => (
          <FieldInput key={k} path={join(p.path, k)} schema={ps} required={req.has(k)} values={p.values} set={p.set} errors={p.errors} opts={p.opts} disabled={p.disabled} names={p.names} />
        ))}
      </details>
    );
  }
  const v = p.values[p.path] ?? '';
  const common = {
    id,
    name: p.path,
    'aria-invalid': err ? ('true' as const) : undefined,
    'aria-describedby': err ? `${id}-err` : desc ? `${id}-hint` : undefined,
    disabled: p.disabled,
  };
  let input: JSX.Element;
  if (kind === 'boolean') {
    input = <input type="checkbox" {...common} checked={v === 'true'} onChange={(e) => p.set(p.path, (e.currentTarget as HTMLInputElement).checked ? 'true' : '')} />;
  } else if (kind === 'enum') {
    input = (
      <select {...common} value={v} onChange={(e) => p.set(p.path, (e.currentTarget as HTMLSelectElement).value)}>
        <option value="">{p.required ? '(choose)' : '(default)'}</option>
        {(s.enum as unknown[]).map((x) => <option key={String(x)} value={String(x)}>{String(x)}</option>)}
      </select>
    );
  } else if (kind === 'json') {
    input = <textarea {...common} rows={4} value={v} placeholder="JSON" onInput={(e) => p.set(p.path, (e.currentTarget as HTMLTextAreaElement).value)} />;
  } else {
    const secret = p.opts.secret?.includes(p.path) || s.writeOnly === true;
    const names = p.names?.[p.path];
    input = (
      <input
        list={names ? `${id}-names` : undefined}
        {...common}
        type={(secret ? 'password' : 'text') as 'text'}
        inputMode={kind === 'number' ? 'numeric' : undefined}
        autoComplete={secret ? 'new-password' : 'off'}
        value={v}
        placeholder={kind === 'list' ? 'comma-separated' : s.default !== undefined ? `default ${JSON.stringify(s.default)}` : ''}
        onInput={(e) => p.set(p.path, (e.currentTarget as HTMLInputElement).value)}
      />
    );
  }
  return (
    <div class={`field${kind === 'boolean' ? ' check' : ''}${err ? ' invalid' : ''}`}>
      <label for={id}>{label(name)}{p.required ? ' *' : ''}</label>
      {input}
      {p.names?.[p.path] && <datalist id={`${id}-names`}>{p.names[p.path]!.map((n) => <option key={n} value={n} />)}</datalist>}
      {err && <p class="field-error" id={`${id}-err`} data-field={p.path}>{err}</p>}
      {desc && !err && <p class="hint" id={`${id}-hint`}>{desc}</p>}
    </div>
  );
}

/** Every path the form has (for placing a server error beside its field). */
function paths(s: Schema, path = ''): string[] {
  const props = (unwrap(s).properties ?? {}) as Record<string, Schema>;
  return Object.entries(props).flatMap(([k, ps]) => (fieldKind(ps) === 'object' ? [join(path, k), ...paths(ps, join(path, k))] : [join(path, k)]));
}

/**
 * A create or edit form generated from a kind's schema: checked in the browser with the same
 * schema before it is sent, and a server refusal naming a field is shown beside that field.
 */
export function SchemaForm(p: {
  schema: Schema;
  initial?: FormValues;
  opts?: FormOptions;
  submitLabel: string;
  /** Fields fixed for an edit (the name). */
  fixed?: readonly string[];
  /** For an edit: a partial body is fine (PUT keeps the other fields). */
  partial?: boolean;
  onSubmit: (body: Record<string, unknown>) => Promise<unknown>;
  onCancel: () => void;
}) {
  const opts = p.opts ?? {};
  const [values, setValues] = useState<FormValues>(p.initial ?? {});
  const [errors, setErrors] = useState<FieldErrors>({});
  const [formErr, setFormErr] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const formRef = useRef<HTMLFormElement>(null);
  const [names, setNames] = useState<Record<string, string[]>>({});
  useEffect(() => {
    for (const [path, collection] of Object.entries(opts.refs ?? {})) {
      api.list(collection).then((pg) => setNames((old) => ({ ...old, [path]: pg.items.map((v) => v.name) })), () => undefined);
    }
  }, []);
  const s = unwrap(p.schema);
  const props = Object.entries((s.properties ?? {}) as Record<string, Schema>).filter(([k]) => !opts.hide?.includes(k));
  const req = new Set((s.required ?? []) as string[]);
  const set = (path: string, v: string) => {
    setValues((old) => ({ ...old, [path]: v }));
    setErrors((old) => {
      if (!old[path]) return old;
      const { [path]: _drop, ...rest } = old;
      return rest;
    });
  };
  const focusFirstError = () =>
    setTimeout(() => formRef.current?.querySelector<HTMLElement>('[aria-invalid="true"]')?.focus(), 0);

  const submit = async (e: Event) => {
    e.preventDefault();
    setFormErr(null);
    const errs: FieldErrors = {};
    const body = bodyOf(p.schema, values, '', errs);
    const check = p.partial ? { ...s, required: [] } : s;
    Object.assign(errs, Object.fromEntries(Object.entries(validate(check, body)).filter(([k]) => !errs[k])));
    if (Object.keys(errs).length) {
      setErrors(errs);
      focusFirstError();
      return;
    }
    setBusy(true);
    try {
      await p.onSubmit(body);
    } catch (err) {
      const msg = err instanceof ApiError ? err.message : errorText(err);
      const field = fieldOfServerError(msg, paths(p.schema));
      if (field) {
        // beside the field, the path it names is said by the field itself
        setErrors({ [field]: msg.replace(/^config\s+\S+:\s*/, '') });
        focusFirstError();
      } else setFormErr(errorText(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form ref={formRef} onSubmit={submit} noValidate class="form">
      {formErr && <p class="error" role="alert">{formErr}</p>}
      {Object.keys(errors).length > 0 && <p class="error" role="alert">Please correct the fields marked below.</p>}
      {props.map(([k, ps]) => (
        <FieldInput key={k} path={k} schema={ps} required={req.has(k) && !p.partial} values={values} set={set} errors={errors} opts={opts} disabled={p.fixed?.includes(k)} names={names} />
      ))}
      {errors['(body)'] && <p class="field-error">{errors['(body)']}</p>}
      <div class="buttons">
        <button type="button" onClick={p.onCancel}>Cancel</button>
        <button type="submit" class="primary" disabled={busy}>{p.submitLabel}</button>
      </div>
    </form>
  );
}

/** A table that turns into stacked cards on narrow screens (the cells carry their column name). */
export function Table<T>(p: { rows: T[]; cols: { title: string; cell: (r: T) => ComponentChildren }[]; empty: string; rowKey: (r: T) => string; caption: string }) {
  if (!p.rows.length) return <p class="empty">{p.empty}</p>;
  return (
    <table class="list">
      <caption class="sr-only">{p.caption}</caption>
      <thead>
        <tr>{p.cols.map((c) => <th key={c.title} scope="col">{c.title}</th>)}</tr>
      </thead>
      <tbody>
        {p.rows.map((r) => (
          <tr key={p.rowKey(r)}>{p.cols.map((c) => <td key={c.title} data-label={c.title}>{c.cell(r)}</td>)}</tr>
        ))}
      </tbody>
    </table>
  );
}
