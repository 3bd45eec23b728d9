// Run by a test in a process of its own: lists one subscription through the Azure provider (the
// endpoint and its certificate from the environment), then describes one VM when asked to, and
// prints what it found. Preloaded with trace-loads.ts, it shows which SDK packages a listing loads.
import { createAzureProvider } from '../../providers/azure/azure-provider.ts';
import { azureBlock, RecordingCredential, SELECTOR } from '../../providers/azure/test-support.ts';

const provider = createAzureProvider(azureBlock(process.env.ARM_URL!), { selector: SELECTOR, credential: new RecordingCredential(), ca: process.env.ARM_CA! });
const [scope] = provider.scopes();
const listing = await provider.list(scope!);
const described = process.env.DESCRIBE ? await provider.describe([{ provider: 'azure', account: scope!.account, id: process.env.DESCRIBE }]) : [];
process.stdout.write(JSON.stringify({ complete: listing.complete, instances: listing.instances.length, described: described.map((d) => d.instance?.name ?? null) }));
await provider.close();
