// A certificate for fakes that serve HTTPS on 127.0.0.1. The Azure SDKs refuse to send a bearer
// token over plain HTTP, so the ARM fake speaks TLS, and a test trusts this certificate through the
// clients' TLS options: NODE_EXTRA_CA_CERTS is read only when a process starts.
import { generate } from 'selfsigned';

/** A private key and its self-signed certificate (PEM), valid for IP 127.0.0.1. */
export interface TestCertificate {
  key: string;
  cert: string;
}

/** Makes a fresh certificate; a test file makes one and shares it between its fakes. */
export async function createTestCertificate(): Promise<TestCertificate> {
  const notBeforeDate = new Date(Date.now() - 60_000);
  const pems = await generate([{ name: 'commonName', value: '127.0.0.1' }], {
    keySize: 2048,
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, keyCertSign: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 7, ip: '127.0.0.1' }] },
    ],
  });
  return { key: pems.private, cert: pems.cert };
}
