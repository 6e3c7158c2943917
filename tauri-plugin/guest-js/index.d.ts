/** The official numbering; a fingerprint reader is TouchID (1), as Android reports it. */
export declare const BiometryType: { readonly None: 0; readonly TouchID: 1; readonly FaceID: 2; readonly Iris: 3 };
export type BiometryType = 0 | 1 | 2 | 3;

export interface Status {
  isAvailable: boolean;
  biometryType: BiometryType;
  /** passgate's name for the reader: "Fingerprint", "None", ... (an extension). */
  biometryKind?: string;
  error?: string;
  errorCode?:
    | 'appCancel' | 'authenticationFailed' | 'invalidContext' | 'notInteractive' | 'passcodeNotSet'
    | 'systemCancel' | 'userCancel' | 'userFallback' | 'biometryLockout' | 'biometryNotAvailable'
    | 'biometryNotEnrolled';
}

export interface AuthOptions {
  allowDeviceCredential?: boolean;
  cancelTitle?: string;
  fallbackTitle?: string;
  title?: string;
  subtitle?: string;
  confirmationRequired?: boolean;
  /** The official spelling. */
  maxAttemps?: number;
  /** passgate: base64url bytes (16 to 1024) to sign; the answer then carries a proof. */
  challenge?: string;
}

export interface ProofKey {
  credentialId: string;
  publicKey: string;
  publicKeyCose: string;
  publicKeyAlgorithm: number;
  rpId: string;
  origin: string;
}

export interface Proof {
  /** AuthenticationResponseJSON: verify it with any WebAuthn library. */
  credential: unknown;
  key: ProofKey;
  challenge: string;
}

export declare function checkStatus(): Promise<Status>;
export declare function authenticate(reason: string, options?: AuthOptions & { challenge?: undefined }): Promise<void>;
export declare function authenticate(reason: string, options: AuthOptions & { challenge: string }): Promise<{ method: 'biometric' | 'passcode'; proof: Proof }>;
export declare function getProofKey(): Promise<ProofKey>;
export declare function Vault(config: Record<string, unknown>): unknown;
export declare function soter(): unknown;
export declare function installPasskeys(): string;
export declare const AuthMode: Record<string, string>;
export declare const VaultErrorCodes: Record<string, number>;
export declare class VaultError extends Error { code: number }
export declare function createPassgateApp(channel: unknown): unknown;
export declare function webviewChannel(): unknown;
