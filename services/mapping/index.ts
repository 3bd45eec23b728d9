// services/mapping: an Instance and the mapping rules give a WorkloadEntry or a Skip. Pure.
export { ListingMapper, mapInstance, mapInstances, type MapContext, type MappedInstances } from './map-instance.ts';
export { entryName, nameLabelValue } from './entry-name.ts';
export {
  annotationOfEntry,
  DesiredEntry,
  HeldEntry,
  labelsAndAnnotations,
  nameOfEntry,
  namespaceOfEntry,
  plainChange,
  plainEntry,
  sourceOfEntry,
  specOfEntry,
  type EntryShape,
  type HeldShape,
} from '../desired-entry.ts';
export { SKIP_CODES, skipKeepsEntry, type SkipCode } from './skip-codes.ts';
export { checkEntry, ISTIO_AUTO_REGISTRATION_ANNOTATIONS } from './check-entry.ts';
export { normalizeLabelValue } from './labels.ts';
export { parsePorts } from './ports.ts';
export { describeNamespacePolicy, matchesNamespace, namespaceAllowed, namespacePolicy, type NamespacePolicy, writerNamespaces } from './namespaces.ts';
export { canonicalAddress, findAutoRegistered, indexAutoRegistered, sameNetwork, type AutoRegisteredIndex } from './auto-registered.ts';
export { parseHealthCheck, type HealthCheck, type ReadinessProbe } from './health.ts';
export {
  deriveMeshServices,
  istioProtocol,
  SERVICE_CODES,
  serviceHost,
  serviceOfEntry,
  serviceSelector,
  type ExcludedEntry,
  type MeshServiceOptions,
  type MeshServices,
  type ServiceCode,
  type ServiceProblem,
} from './mesh-services.ts';
