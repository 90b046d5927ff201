import ArgumentParser
import GovexKeyStore
import GovexWire

struct Keygen: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a batch-signing key pair.",
        discussion: """
        Writes DIR/signing.key (PKCS#8 PEM, mode 0600) and DIR/signing.pub
        (PEM public key, to register at the hub). Never overwrites a key.

        Example:
          govex keygen --algorithm sm2 --out /var/lib/govex/keys
        """
    )

    @Option(help: "ed25519 (default) or sm2 (SM2 signatures over SM3 digests).")
    var algorithm: String = "ed25519"

    @Option(help: "Directory for the key files (created 0700 if missing).")
    var out: String

    @Flag(help: "Print the result as JSON.")
    var json = false

    func run() throws {
        guard let chosen = SignatureAlgorithm(name: algorithm) else {
            printError("unknown --algorithm '\(algorithm)': use ed25519 or sm2")
            throw ExitStatus.failure
        }
        do {
            let generated = try KeyStore.generate(chosen, directory: out)
            let keyID = Hex.encode(generated.publicKey.keyID)
            if json {
                print(BatchJSON.object([
                    ("algorithm", BatchJSON.string(chosen.description)),
                    ("key_id", BatchJSON.string(keyID)),
                    ("private_key", BatchJSON.string(generated.privateKeyPath)),
                    ("public_key", BatchJSON.string(generated.publicKeyPath)),
                ]))
            } else {
                print("created \(chosen) signing key \(keyID)")
                print("  private key: \(generated.privateKeyPath) (mode 0600: keep it on this machine)")
                print("  public key:  \(generated.publicKeyPath) (register it at the hub)")
            }
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }
    }
}
