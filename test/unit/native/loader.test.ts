// The addon loaders: the production addon carries the I/O handles and the data-plane engine but not
// the test-only cores, which live in the separate test addon (binding.gyp: vpcgw_native_test).
import { describe, expect, it } from 'vitest';
import { VpnError } from '../../../src/common/errors.js';
import { addonCandidates, loadNative, requireAddon } from '../../../src/native/loader.js';
import { loadNativeTestCores } from '../../../src/native/test-cores.js';

describe('native loader', () => {
  it('loads the production addon without the test-only cores', () => {
    const a = loadNative() as unknown as Record<string, unknown>;
    expect(a.abiVersion).toBe(1);
    for (const k of ['TunHandle', 'UdpHandle', 'DataPlaneHandle', 'openTun', 'closeFd', 'nlLink']) expect(typeof a[k]).toBe('function');
    expect(a.EspCore).toBeUndefined();
    expect(a.OvpnCore).toBeUndefined();
  });

  it('loads the test addon with the ESP and OpenVPN cores', () => {
    const t = loadNativeTestCores();
    expect(t.testAbi).toBe(1);
    expect(typeof t.EspCore).toBe('function');
    expect(typeof t.OvpnCore).toBe('function');
  });

  it('reports a missing addon as ERR_NATIVE_UNAVAILABLE listing the paths tried', () => {
    const tried = addonCandidates('no-such-addon.node', '/nonexistent/x.node');
    expect(tried[0]).toBe('/nonexistent/x.node');
    let err: unknown;
    try {
      requireAddon('no-such-addon.node', '/nonexistent/x.node');
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VpnError);
    expect((err as VpnError).code).toBe('ERR_NATIVE_UNAVAILABLE');
    expect((err as VpnError).message).toContain('/nonexistent/x.node');
  });
});
