package safra.trino;

import io.trino.spi.Plugin;
import java.util.Set;

/**
 * Safra's Trino plugin: the pseudonym functions of {@link PseudonymFunctions}, keyed by a secret
 * that only the Trino process reads (from the file named by the {@code safra.pseudonym-key-file}
 * system property), so the key never appears in query text.
 */
public final class SafraPseudonymPlugin implements Plugin {
    @Override
    public Set<Class<?>> getFunctions() {
        return Set.of(PseudonymFunctions.class);
    }
}
